"""A collaborator without a Galaxy login opens the link that "Make viewer link" wrote.

Against the live local Galaxy (GALAXY_URL, GALAXY_USER_KEY): test-data's vol_ome and
labels_vol are uploaded as directory datasets and the tool runs on them with the link aimed at
the standalone Neuroglancer client this Galaxy serves (the plugin's static files; the state
is read from the URL hash). A fresh, logged-out browser opens the link: Galaxy's access log
must show chunk files of both datasets served from /datasets/<id>/display, Neuroglancer must
report them drawn, with no page errors, and the picture must not be blank.
"""

import json
import os
import time

import numpy as np
import pytest
from bioblend.galaxy import GalaxyInstance

from galaxy_viewer import CHUNK, galaxy_requests, pixels, upload_directory

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CLIENT = "static/plugins/visualizations/neuroglancer/static/dist/index.html"


@pytest.fixture(scope="module")
def link(galaxy_url, tmp_path_factory):
    key = os.environ.get("GALAXY_USER_KEY")
    if not key:
        pytest.fail("GALAXY_USER_KEY is not set: eval \"$(scripts/galaxy env)\" first")
    gi = GalaxyInstance(galaxy_url, key=key)
    history = gi.histories.create_history("viewer link in a browser")
    ids = [upload_directory(gi, history["id"], os.path.join(ROOT, "test-data", name),
                            "neuroglancer_precomputed", tmp_path_factory.mktemp(name))["id"]
           for name in ("vol_ome", "labels_vol")]
    run = gi.tools.run_tool(history["id"], "ns_make_viewer_link", {
        "volumes": {"values": [{"src": "hda", "id": ids[0]}]},
        "segmentation_volumes": {"values": [{"src": "hda", "id": ids[1]}]},
        "viewer_url": f"{galaxy_url}/{CLIENT}"})
    outputs = {o["output_name"]: o["id"] for o in run["outputs"]}
    for dataset_id in outputs.values():
        gi.datasets.wait_for_dataset(dataset_id, maxwait=600)
    state = json.loads(gi.datasets.download_dataset(outputs["state"]))
    yield gi.datasets.download_dataset(outputs["link"]).decode().strip(), ids, state
    gi.histories.delete_history(history["id"], purge=True)


def test_link_opens_without_login_and_draws(page, galaxy_url, link, screenshot):
    url, ids, state = link
    assert url.startswith(f"{galaxy_url}/{CLIENT}#!")
    page.context.clear_cookies()  # a collaborator: no Galaxy session
    start = time.time()
    page.goto(url, wait_until="domcontentloaded")
    requests = galaxy_requests("/datasets/", since=start)
    page.wait_for_function("() => window.viewer?.layerManager.managedLayers.length === 2 "
                           "&& window.viewer.isReady()", timeout=120_000, polling=500)
    for dataset_id in ids:
        chunks = [status for _, path, status in requests
                  if path.startswith(f"/datasets/{dataset_id}/display/") and CHUNK.search(path)]
        assert chunks and set(chunks) == {200}, (dataset_id, requests)
    shown = page.evaluate("() => window.viewer.state.toJSON().layers.map((l) => l.source)")
    assert shown == [layer["source"] for layer in state["layers"]]
    screenshot(page, "view-link-from-galaxy.png")
    assert pixels(page).std() > 10
    assert page.errors == [], page.errors
