"""A user outside Galaxy views local volumes with `neurostation view --serve`.

The command runs as a user would start it (the repository's package venv: this suite runs in
the tooling venv, which lacks the package), serving test-data/vol_ome (image) and
test-data/labels_vol (segments 1, 2, 3 side by side; `--segments 1,2` selects two) with the
bundled client. Chromium opens the printed URL; the server's own request log (its standard
output) must show chunk files of both volumes served, Neuroglancer must report every visible
chunk drawn (viewer.isReady()) with no page errors, the picture must not be blank, and with the
image hidden the selected segments' colours (Neuroglancer's own colour of each id) must cover
their share of the view while segment 3, not selected, must be absent.
"""

import io
import os
import queue
import re
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
NEUROSTATION = os.path.join(ROOT, ".venv", "bin", "neurostation")
IMAGE = os.path.join(ROOT, "test-data", "vol_ome")
LABELS = os.path.join(ROOT, "test-data", "labels_vol")
# Log lines of the server: `GET <path> <status>`; chunk files are <scale>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>.
REQUEST = re.compile(r"^GET (/volumes/(\d+)/\S+) (\d+)$")
CHUNK = re.compile(r"/\d+-\d+_\d+-\d+_\d+-\d+$")
VIEWER = "window.viewer"


@pytest.fixture
def served():
    """The running `view --serve` process, its URL and a queue of (time, log line)."""
    if not os.path.exists(NEUROSTATION):
        pytest.fail(f"{NEUROSTATION} is missing: create the package venv (scripts/lib.sh ns_package_venv)")
    proc = subprocess.Popen(
        [NEUROSTATION, "view", "--serve", "--port", "0", IMAGE, "--segmentation", LABELS,
         "--segments", "1,2", "--name", "image", "--name", "labels"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put((time.time(), line.rstrip("\n")))
                                     for line in proc.stdout], daemon=True).start()
    try:
        stamp, first = lines.get(timeout=120)
        assert first.startswith("Neuroglancer: http://127.0.0.1:"), (first, proc.stderr.read())
        yield {"url": first.split(" ", 1)[1], "log": lines, "proc": proc}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def requests_until_settled(lines, settle=2.0, timeout=120):
    """(time, path, volume, status) of the served volume requests, once chunks of every volume
    were among them and no new request came for `settle` seconds."""
    found, changed, deadline = [], time.time(), time.time() + timeout
    while time.time() < deadline:
        try:
            stamp, line = lines.get(timeout=0.5)
        except queue.Empty:
            chunked = {v for _, path, v, _ in found if CHUNK.search(path)}
            if chunked == {0, 1} and time.time() - changed >= settle:
                break
            continue
        match = REQUEST.match(line)
        if match:
            found.append((stamp, match[1], int(match[2]), int(match[3])))
            changed = time.time()
    return found


def wait_ready(page, timeout=120):
    """Until both layers are there and Neuroglancer reports every visible chunk drawn."""
    page.wait_for_function(
        f"() => {VIEWER}?.layerManager.managedLayers.length === 2 && {VIEWER}.isReady()",
        timeout=timeout * 1000, polling=500)


def rgb(page):
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), dtype=float)


def test_serve_streams_and_draws_image_and_segments(page, served, screenshot):
    console = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    start = time.time()
    page.goto(served["url"], wait_until="domcontentloaded")
    requests = requests_until_settled(served["log"])
    wait_ready(page)
    ready = time.time()
    chunks = [(t, path, v, status) for t, path, v, status in requests if CHUNK.search(path)]
    assert {(v, status) for _, path, v, status in requests if path.endswith("/info")} \
        == {(0, 200), (1, 200)}, requests
    assert {v for _, _, v, _ in chunks} == {0, 1} and {s for *_, s in chunks} == {200}, requests
    print(f"\nfirst chunk served {min(t for t, *_ in chunks) - start:.2f} s after opening, all "
          f"drawn by {ready - start:.2f} s; {len(chunks)} chunk requests "
          f"({sum(v == 0 for _, _, v, _ in chunks)} image, {sum(v == 1 for _, _, v, _ in chunks)} labels)")
    state = page.evaluate(f"() => {VIEWER}.state.toJSON()")
    assert [layer["name"] for layer in state["layers"]] == ["image", "labels"]
    assert state["layers"][1]["segments"] == ["1", "2"]

    screenshot(page, "view-serve.png")
    shown = rgb(page)
    assert shown.std() > 10, f"blank view (pixel std {shown.std():.1f})"
    assert page.errors == [] and console == [], (page.errors, console)

    # The segments alone, opaque: each selected id's own colour must be on screen, 3's not.
    colours = page.evaluate(f"""() => {{
        const [image, labels] = {VIEWER}.layerManager.managedLayers;
        image.setVisible(false);
        labels.layer.displayState.selectedAlpha.value = 1;
        const hash = labels.layer.displayState.segmentationColorGroupState.value.segmentColorHash;
        return [1n, 2n, 3n].map((id) => {{
            const c = hash.compute(new Float32Array(4), id);
            return [c[0] * 255, c[1] * 255, c[2] * 255];
        }});
    }}""")
    wait_ready(page)
    time.sleep(1)
    screenshot(page, "view-serve-segments.png")
    labels = rgb(page)
    share = [float((np.abs(labels - c).max(axis=2) <= 3).mean()) for c in colours]
    print(f"segment colours {[tuple(round(v) for v in c) for c in colours]} cover "
          f"{[f'{s:.1%}' for s in share]} of the view")
    assert share[0] > 0.01 and share[1] > 0.01, share
    assert share[2] < 0.0005, share
    assert page.errors == [] and console == [], (page.errors, console)
