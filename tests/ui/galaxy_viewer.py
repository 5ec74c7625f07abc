"""Helpers of the browser tests of the Neuroglancer plugin: datasets put into Galaxy the way a
user does, the plugin page, Neuroglancer's readiness, Galaxy's record of the requests it served,
and the reference numbers computed with the package's own libraries (TensorStore, numpy)."""

import contextlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
from datetime import datetime

import numpy as np
from PIL import Image
from playwright.sync_api import TimeoutError

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TEST_DATA = os.path.join(ROOT, "test-data")
# The package venv (scripts/lib.sh ns_package_venv): the writer and TensorStore live there.
PACKAGE_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
# Galaxy's access log (the harness's server, both modes): the requests Galaxy answered. The
# browser's own network events miss requests from the plugin iframe and its workers (Galaxy
# fills the iframe without navigating it), so the server's record is the evidence.
GALAXY_LOG = os.path.join(ROOT, ".galaxy", "galaxy.log")
ACCESS = re.compile(r'^uvicorn\.access INFO (\S+ \S+) .*"GET (\S+) HTTP/[\d.]+" (\d+)')
# Chunk files of a precomputed scale: <scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>.
CHUNK = re.compile(r"/display/([^/]+)/(\d+-\d+_\d+-\d+_\d+-\d+)$")
# Galaxy writes the plugin into an iframe it fills itself (no navigation, so Playwright lists
# no frame for it): the viewer is reached through the parent page.
PLUGIN_FRAME = "iframe#galaxy_visualization"
VIEWER = f"document.querySelector('{PLUGIN_FRAME}')?.contentWindow?.viewer"


def upload_directory(gi, history_id, folder, ext, tmp_path):
    """Upload a folder as one directory dataset (the way planemo stages class="Directory")."""
    archive = tmp_path / f"{os.path.basename(folder)}.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(os.listdir(folder)):
            tar.add(os.path.join(folder, entry), arcname=entry)
    uploader = gi.get_tus_uploader(str(archive))
    uploader.upload()
    # An empty primary file; the archive's members become the dataset's extra files.
    element = {"src": "pasted", "paste_content": "", "ext": ext, "name": os.path.basename(folder),
               "extra_files": {"src": "files", "items_from": "archive", "fuzzy_root": False}}
    payload = {"history_id": history_id, "targets": [
        {"destination": {"type": "hdas"}, "elements": [element], "auto_decompress": False}],
        "files_0|file_data": {"session_id": uploader.session_id, "name": archive.name}}
    response = gi.make_post_request(f"{gi.url}/tools/fetch", payload=payload)
    dataset = response["outputs"][0]
    gi.datasets.wait_for_dataset(dataset["id"], maxwait=600)
    archive.unlink()
    return gi.datasets.show_dataset(dataset["id"])


@contextlib.contextmanager
def history_with_volume(gi, name, folder, tmp_path):
    """(history, dataset): a new history holding `folder` uploaded as a precomputed directory
    dataset; the history is purged afterwards."""
    history = gi.histories.create_history(name)
    try:
        yield history, upload_directory(gi, history["id"], folder, "neuroglancer_precomputed",
                                        tmp_path)
    finally:
        gi.histories.delete_history(history["id"], purge=True)


def paste_json(gi, history_id, content, name=None):
    """A `json` dataset pasted into the history (a volume reference or a viewer state)."""
    upload = gi.tools.paste_content(json.dumps(content), history_id, file_type="json",
                                    **({"file_name": name} if name else {}))
    dataset = upload["outputs"][0]
    gi.datasets.wait_for_dataset(dataset["id"], maxwait=300)
    return dataset


def login(page, galaxy_url, user):
    page.context.clear_cookies()  # the browser is shared by the session's tests
    page.goto(f"{galaxy_url}/login/start", wait_until="domcontentloaded")
    page.locator("input[name=login]").fill(user["email"])
    page.locator("input[name=password]").fill(user["password"])
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_function("() => window.Galaxy?.user?.id", timeout=60_000)


def open_plugin(page, galaxy_url, dataset_id):
    """The page a biologist reaches from the dataset's "Visualize" list. Page errors count from
    here on (the Galaxy client aborts its pending requests when the login page is left)."""
    page.goto(f"{galaxy_url}/visualizations/display?visualization=neuroglancer"
              f"&dataset_id={dataset_id}", wait_until="domcontentloaded")
    page.errors.clear()


def wait_ready(page, timeout=120):
    """Until the view has a layer and Neuroglancer reports its sources and every visible chunk
    loaded and drawn (viewer.isReady(), which is also true while there are no layers)."""
    ready = f"() => {VIEWER}?.layerManager.managedLayers.length > 0 && {VIEWER}.isReady()"
    try:
        page.wait_for_function(ready, timeout=timeout * 1000, polling=500)
    except TimeoutError as exc:  # say what the viewer shows instead
        status = page.evaluate(f"""() => {{
            const doc = document.querySelector("{PLUGIN_FRAME}")?.contentDocument;
            const viewer = {VIEWER};
            return doc ? {{
                status: [...doc.querySelectorAll("[id^=neuroglancer-status-container] li")]
                    .map((li) => li.textContent).join(" | "),
                viewer: viewer !== undefined,
                layers: viewer?.layerManager.managedLayers.length,
                scripts: [...doc.querySelectorAll("script")].map((s) => s.src),
                body: doc.body?.innerHTML.slice(0, 300),
            }} : "no plugin frame";
        }}""")
        page.screenshot(path=os.path.join(ROOT, "artifacts", "screenshots", "not-ready.png"))
        raise AssertionError(f"viewer not ready after {timeout} s: {status!r}; "
                             f"page errors: {page.errors}") from exc


def viewer_state(page):
    return page.evaluate(f"() => {VIEWER}.state.toJSON()")


def set_visible(page, layer_name, visible):
    """Show or hide a layer (as its eye button does), then wait until the view is redrawn."""
    page.evaluate(f"([name, visible]) => {VIEWER}.layerManager.getLayerByName(name)"
                  ".setVisible(visible)", [layer_name, visible])
    wait_ready(page)
    time.sleep(1)


def galaxy_requests(prefix, since, settle=2.0, timeout=120):
    """(time, path, status) of the GET requests under prefix since `since` (epoch s) in Galaxy's
    access log, once chunk files were among them and no new request came for `settle` s."""
    found, changed, deadline = None, time.time(), time.time() + timeout
    while time.time() < deadline:
        with open(GALAXY_LOG, errors="replace") as log:
            matches = [ACCESS.match(line) for line in log]
        now = [(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp(), m[2], int(m[3]))
               for m in matches if m and m[2].startswith(prefix)]
        now = [request for request in now if request[0] >= since]
        if now != found:
            found, changed = now, time.time()
        elif time.time() - changed >= settle and any(CHUNK.search(path) for _, path, _ in found):
            break
        time.sleep(0.5)
    return found


def chunk_requests(requests, dataset_id):
    """The chunk-file requests of one dataset: [(time, scale key, chunk name, status)]."""
    prefix = f"/datasets/{dataset_id}/display/"
    return [(t, *CHUNK.search(path).groups(), status) for t, path, status in requests
            if path.startswith(prefix) and CHUNK.search(path)]


def pixels(locator, mode="L"):
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert(mode), dtype=float)


def coarsest_scale_contrast(folder):
    """numpy's 1st and 99th percentiles of the coarsest scale of a precomputed volume as
    TensorStore reads it (package venv), widened to whole values for integer types."""
    code = (
        "import json, sys, numpy as np, tensorstore as ts\n"
        "spec = {'driver': 'neuroglancer_precomputed', 'kvstore': 'file://' + sys.argv[1]}\n"
        "scales = json.load(open(sys.argv[1] + '/info'))['scales']\n"
        "spec['scale_index'] = len(scales) - 1\n"
        "a = ts.open(spec).result().read().result()\n"
        "lo, hi = np.percentile(a, [1, 99])\n"
        "if a.dtype.kind in 'iu': lo, hi = np.floor(lo), np.ceil(hi)\n"
        "print(json.dumps([float(lo), float(hi)]))\n")
    out = subprocess.run([PACKAGE_PYTHON, "-c", code, os.path.abspath(folder)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def segment_colours(page, layer_name, segment_ids):
    """{id: RGB 0-255} a segment is drawn with in a cross-section over a black background:
    Neuroglancer's own colour of the segment (its hash; seen drawn as it is, not dimmed by
    the layer's opacity)."""
    colours = page.evaluate(
        f"""([name, ids]) => {{
            const state = {VIEWER}.layerManager.getLayerByName(name).layer.displayState;
            const hash = state.segmentationColorGroupState.value.segmentColorHash;
            return Object.fromEntries(ids.map((id) => [id,
                Array.from(hash.compute(new Float32Array(3), BigInt(id))).map((c) => 255 * c)]));
        }}""", [layer_name, list(segment_ids)])
    return {int(k): np.array(v) for k, v in colours.items()}


def colour_masks(rgb, colours, tolerance=12):
    """{id: boolean mask of the pixels drawn in that segment's colour}."""
    return {k: np.abs(rgb - colour).max(axis=2) <= tolerance for k, colour in colours.items()}
