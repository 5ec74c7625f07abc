"""A biologist opens a precomputed volume from their history in the Neuroglancer visualization.

Against the live local Galaxy (GALAXY_URL, GALAXY_ADMIN_KEY): a new user logs in through the
login form, test-data/vol_ome is uploaded as a `neuroglancer_precomputed` directory dataset,
and the plugin page (/visualizations/display?visualization=neuroglancer&dataset_id=…) must
stream the volume's chunk files from /datasets/<id>/display/<path> and draw them (Neuroglancer's
own viewer.isReady()), with no page errors; the drawn picture must differ from the same view
with the layer hidden, so the pixels come from the data, not from the viewer's frame.
"""

import os
import time

import numpy as np
import pytest
from galaxy_viewer import (CHUNK, PLUGIN_FRAME, TEST_DATA, VIEWER, galaxy_requests,
                           history_with_volume, login, open_plugin, paste_json, pixels,
                           wait_ready)

VOLUME = os.path.join(TEST_DATA, "vol_ome")


@pytest.fixture(scope="module")
def volume(user, tmp_path_factory):
    with history_with_volume(user["gi"], "neuroglancer view test", VOLUME,
                             tmp_path_factory.mktemp("upload")) as (_, dataset):
        assert dataset["extension"] == "neuroglancer_precomputed" and dataset["state"] == "ok"
        yield dataset


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


def test_json_reference_is_opened_at_its_url(page, galaxy_url, user, volume):
    """A reference to a volume over HTTP (here: the same volume as Galaxy serves it)."""
    base = f"{galaxy_url}/datasets/{volume['id']}/display"
    reference = paste_json(user["gi"], volume["history_id"], {"url": base})
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
    reference = paste_json(user["gi"], volume["history_id"], {"url": "file:///data/volume"})
    login(page, galaxy_url, user)
    open_plugin(page, galaxy_url, reference["id"])
    message = page.frame_locator(PLUGIN_FRAME).get_by_text("which a browser cannot open")
    message.wait_for(timeout=60_000)
    assert "points to file:///data/volume" in message.inner_text()
