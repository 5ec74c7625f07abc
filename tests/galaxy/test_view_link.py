"""The viewer state of "Make viewer link" points at URLs where Galaxy really serves the volume.

Against the live local Galaxy (GALAXY_URL, GALAXY_USER_KEY), in the tooling venv: test-data's
vol_ome and labels_vol are uploaded as `neuroglancer_precomputed` directory datasets, the tool
runs on them, and each layer's source in the written state must be this Galaxy's
/datasets/<id>/display of that very dataset, serving the volume's `info` and chunk files
byte for byte — to a client without a Galaxy session or key, as a collaborator's browser is.
"""

import json
import os
import sys
import urllib.request

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "ui"))
from galaxy_viewer import upload_directory  # noqa: E402  (the directory upload, as planemo does it)

VOLUMES = {"vol_ome": os.path.join(ROOT, "test-data", "vol_ome"),
           "labels_vol": os.path.join(ROOT, "test-data", "labels_vol")}


@pytest.fixture(scope="module")
def galaxy(user_galaxy, tmp_path_factory):
    gi = user_galaxy
    history = gi.histories.create_history("viewer link test")
    datasets = {name: upload_directory(gi, history["id"], folder, "neuroglancer_precomputed",
                                       tmp_path_factory.mktemp(name))
                for name, folder in VOLUMES.items()}
    yield gi, history["id"], datasets
    gi.histories.delete_history(history["id"], purge=True)


def anonymous_get(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read()


def test_state_sources_are_served_by_galaxy(galaxy):
    gi, history, datasets = galaxy
    run = gi.tools.run_tool(history, "ns_make_viewer_link", {
        "volumes": {"values": [{"src": "hda", "id": datasets["vol_ome"]["id"]}]},
        "segmentation_volumes": {"values": [{"src": "hda", "id": datasets["labels_vol"]["id"]}]},
        "segments": "1,2"})
    outputs = {o["output_name"]: o for o in run["outputs"]}
    for output in outputs.values():
        gi.datasets.wait_for_dataset(output["id"], maxwait=600)
    state = json.loads(gi.datasets.download_dataset(outputs["state"]["id"]))
    link = gi.datasets.download_dataset(outputs["link"]["id"]).decode().strip()
    assert link.startswith("https://neuroglancer-demo.appspot.com/#!")
    galaxy_url = gi.base_url.rstrip("/")
    for layer, (name, folder) in zip(state["layers"], VOLUMES.items()):
        assert layer["name"] == name
        assert layer["source"] == f"precomputed://{galaxy_url}/datasets/{datasets[name]['id']}/display"
        base = layer["source"][len("precomputed://"):]
        status, info = anonymous_get(f"{base}/info")
        with open(os.path.join(folder, "info"), "rb") as handle:
            assert status == 200 and json.loads(info) == json.loads(handle.read())
        key = json.loads(info)["scales"][-1]["key"]
        chunk = sorted(os.listdir(os.path.join(folder, key)))[0]
        status, data = anonymous_get(f"{base}/{key}/{chunk}")
        with open(os.path.join(folder, key, chunk), "rb") as handle:
            assert status == 200 and data == handle.read()
    assert [layer["type"] for layer in state["layers"]] == ["image", "segmentation"]
