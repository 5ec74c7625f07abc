"""A biologist opens a precomputed volume from their history in the Neuroglancer visualization.

Against the live local Galaxy (GALAXY_URL, GALAXY_ADMIN_KEY): a new user logs in through the
login form, test-data/vol_ome is uploaded as a `neuroglancer_precomputed` directory dataset,
and the plugin page (/visualizations/display?visualization=neuroglancer&dataset_id=…) must
stream the volume's chunk files from /datasets/<id>/display/<path> and draw them (Neuroglancer's
own viewer.isReady()), with no page errors; the drawn picture must differ from the same view
with the layer hidden, so the pixels come from the data, not from the viewer's frame.
"""

import io
import json
import os
import re
import tarfile
import time
import uuid
from datetime import datetime

import numpy as np
import pytest
from bioblend.galaxy import GalaxyInstance
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
VOLUME = os.path.join(ROOT, "test-data", "vol_ome")
# Galaxy's access log (the harness's server, both modes): the requests Galaxy answered. The
# browser's own network events miss requests from the plugin iframe and its workers (Galaxy
# fills the iframe without navigating it), so the server's record is the evidence.
GALAXY_LOG = os.path.join(ROOT, ".galaxy", "galaxy.log")
ACCESS = re.compile(r'^uvicorn\.access INFO (\S+ \S+) .*"GET (\S+) HTTP/[\d.]+" (\d+)')
# Chunk files of a precomputed scale: <scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>.
CHUNK = re.compile(r"/display/[^/]+/\d+-\d+_\d+-\d+_\d+-\d+$")


@pytest.fixture(scope="module")
def user(galaxy_url, tmp_path_factory):
    """A fresh user with a known password (to log in through the form) and an API key. Galaxy
    does not let admins delete users here, so it stays (the test database is thrown away)."""
    admin_key = os.environ.get("GALAXY_ADMIN_KEY")
    if not admin_key:
        pytest.fail("GALAXY_ADMIN_KEY is not set: eval \"$(scripts/galaxy env)\" first")
    admin = GalaxyInstance(galaxy_url, key=admin_key)
    name = f"viewer-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    created = admin.users.create_local_user(name, f"{name}@neurostation.local", password)
    gi = GalaxyInstance(galaxy_url, key=admin.users.create_user_apikey(created["id"]))
    return {"email": f"{name}@neurostation.local", "password": password, "gi": gi}


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
    gi.datasets.wait_for_dataset(dataset["id"], maxwait=300)
    return gi.datasets.show_dataset(dataset["id"])


@pytest.fixture(scope="module")
def volume(user, tmp_path_factory):
    gi = user["gi"]
    history = gi.histories.create_history("neuroglancer view test")
    dataset = upload_directory(gi, history["id"], VOLUME, "neuroglancer_precomputed",
                               tmp_path_factory.mktemp("upload"))
    assert dataset["extension"] == "neuroglancer_precomputed" and dataset["state"] == "ok"
    yield dataset
    gi.histories.delete_history(history["id"], purge=True)


def login(page, galaxy_url, user):
    page.context.clear_cookies()  # the browser is shared by the session's tests
    page.goto(f"{galaxy_url}/login/start", wait_until="domcontentloaded")
    page.locator("input[name=login]").fill(user["email"])
    page.locator("input[name=password]").fill(user["password"])
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_function("() => window.Galaxy?.user?.id", timeout=60_000)


# Galaxy writes the plugin into an iframe it fills itself (no navigation, so Playwright lists
# no frame for it): the viewer is reached through the parent page.
PLUGIN_FRAME = "iframe#galaxy_visualization"
VIEWER = f"document.querySelector('{PLUGIN_FRAME}')?.contentWindow?.viewer"


def wait_ready(page, timeout=120):
    """Until the view has a layer and Neuroglancer reports its sources and every visible chunk
    loaded and drawn (viewer.isReady(), which is also true while there are no layers)."""
    ready = f"() => {VIEWER}?.layerManager.managedLayers.length > 0 && {VIEWER}.isReady()"
    page.wait_for_function(ready, timeout=timeout * 1000, polling=500)


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


def pixels(locator):
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("L"), dtype=float)


def test_plugin_is_offered_for_precomputed_datasets(user, volume):
    gi = user["gi"]
    names = [p["name"] for p in gi.make_get_request(
        f"{gi.url}/plugins", params={"dataset_id": volume["id"]}).json()]
    assert "neuroglancer" in names


def test_neuroglancer_streams_and_draws_the_volume(page, galaxy_url, user, volume, screenshot):
    login(page, galaxy_url, user)
    start = time.time()
    open_plugin(page, galaxy_url, volume["id"])
    prefix = f"/datasets/{volume['id']}/display"
    requests = galaxy_requests(prefix, since=start)
    wait_ready(page)  # after the chunks came: isReady() is also true before any was asked for
    ready = time.time()
    chunks = [(t, path, status) for t, path, status in requests if CHUNK.search(path)]
    assert (f"{prefix}/info", 200) in [(path, status) for _, path, status in requests], requests
    assert chunks and all(status == 200 for _, _, status in chunks), requests
    first_chunk = min(t for t, _, _ in chunks) - start
    print(f"\nfirst chunk served {first_chunk:.1f} s after opening, all drawn by "
          f"{ready - start:.1f} s; "
          f"{len(chunks)} chunk requests: {sorted(path[len(prefix):] for _, path, _ in chunks)}")

    iframe = page.locator(PLUGIN_FRAME)
    screenshot(page, "galaxy-neuroglancer-view.png")
    shown = pixels(iframe)
    assert shown.std() > 10, f"blank view (pixel std {shown.std():.1f})"
    page.evaluate(f"() => {VIEWER}.layerManager.managedLayers[0].setVisible(false)")
    wait_ready(page)
    time.sleep(1)
    hidden = pixels(iframe)
    changed = np.abs(shown - hidden) > 16
    assert changed.mean() > 0.01, f"the layer changes only {changed.mean():.2%} of the view"
    assert page.errors == [], page.errors


def paste_reference(gi, history_id, reference):
    upload = gi.tools.paste_content(json.dumps(reference), history_id, file_type="json")
    dataset = upload["outputs"][0]
    gi.datasets.wait_for_dataset(dataset["id"], maxwait=300)
    return dataset


def open_plugin(page, galaxy_url, dataset_id):
    """The page a biologist reaches from the dataset's "Visualize" list. Page errors count from
    here on (the Galaxy client aborts its pending requests when the login page is left)."""
    page.goto(f"{galaxy_url}/visualizations/display?visualization=neuroglancer"
              f"&dataset_id={dataset_id}", wait_until="domcontentloaded")
    page.errors.clear()


def test_json_reference_is_opened_at_its_url(page, galaxy_url, user, volume):
    """A reference to a volume over HTTP (here: the same volume as Galaxy serves it)."""
    base = f"{galaxy_url}/datasets/{volume['id']}/display"
    reference = paste_reference(user["gi"], volume["history_id"], {"url": base})
    login(page, galaxy_url, user)
    start = time.time()
    open_plugin(page, galaxy_url, reference["id"])
    chunks = [status for _, path, status in galaxy_requests(base[len(galaxy_url):], since=start)
              if CHUNK.search(path)]
    wait_ready(page)
    assert chunks and set(chunks) == {200}
    source = page.evaluate(f"() => {VIEWER}.state.toJSON().layers[0].source")
    assert source == f"precomputed://{base}"
    assert page.errors == [], page.errors


def test_reference_a_browser_cannot_open_is_reported(page, galaxy_url, user, volume):
    reference = paste_reference(user["gi"], volume["history_id"], {"url": "file:///data/volume"})
    login(page, galaxy_url, user)
    open_plugin(page, galaxy_url, reference["id"])
    message = page.frame_locator(PLUGIN_FRAME).get_by_text("which a browser cannot open")
    message.wait_for(timeout=60_000)
    assert "points to file:///data/volume" in message.inner_text()
