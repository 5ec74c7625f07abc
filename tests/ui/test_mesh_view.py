"""Meshes made by the "Build meshes" tool in Galaxy are fetched and drawn by the Neuroglancer
plugin: the tool runs on test-data/labels_vol, a viewer state selects segments of its output
in a 3D-only view, and Galaxy's access log shows the mesh manifests and fragments served; the
three meshes are drawn in colour in the 3D view, which stays black without selected segments.

Against the live local Galaxy (GALAXY_URL, GALAXY_ADMIN_KEY), in headless Chromium."""

import os
import time

import pytest
from galaxy_viewer import (PLUGIN_FRAME, TEST_DATA, galaxy_requests, history_with_volume, login,
                           open_plugin, paste_json, pixels, viewer_state, wait_ready)

LABELS = os.path.join(TEST_DATA, "labels_vol")


@pytest.fixture(scope="module")
def meshed(user, tmp_path_factory):
    """The tool's output dataset (a precomputed copy of labels_vol with meshes)."""
    gi = user["gi"]
    with history_with_volume(gi, "mesh view test", LABELS,
                             tmp_path_factory.mktemp("upload")) as (history, labels):
        run = gi.tools.run_tool(history["id"], "ns_build_meshes",
                                {"input": {"src": "hda", "id": labels["id"]}})
        output = next(o for o in run["outputs"] if o["output_name"] == "output")
        gi.datasets.wait_for_dataset(output["id"], maxwait=600)
        yield history, output


def state(galaxy_url, dataset_id, segments):
    """A 3D-only view (no slices, axes or scale bar: black where no mesh is drawn)."""
    return {
        "dimensions": {"x": [2.5e-7, "m"], "y": [2.5e-7, "m"], "z": [1e-6, "m"]},
        "position": [10, 8, 2], "projectionScale": 64, "layout": "3d",
        "showSlices": False, "showAxisLines": False, "showDefaultAnnotations": False,
        "layers": [{"type": "segmentation", "name": "labels", "segments": segments,
                    "source": f"precomputed://{galaxy_url}/datasets/{dataset_id}/display"}],
    }


def coloured_fraction(page):
    """The share of the viewer's pixels in a saturated colour (shaded segment meshes; the
    viewer's own widgets are grey and white, with a small coloured layer chip)."""
    rgb = pixels(page.locator(PLUGIN_FRAME), "RGB")
    return float((rgb.max(axis=2) - rgb.min(axis=2) > 60).mean())


def test_viewer_fetches_and_draws_the_meshes(page, galaxy_url, user, meshed, screenshot):
    history, output = meshed
    gi = user["gi"]
    prefix = f"/datasets/{output['id']}/display/mesh/"
    fractions = {}
    for segments in (["1", "2", "3"], []):
        view = paste_json(gi, history["id"], state(galaxy_url, output["id"], segments),
                          name=f"mesh-view-{len(segments)}.json")
        login(page, galaxy_url, user)
        start = time.time()
        open_plugin(page, galaxy_url, view["id"])
        wait_ready(page)
        time.sleep(3)  # meshes arrive after the layer reports ready in some builds
        wait_ready(page)
        assert viewer_state(page)["layers"][0].get("segments", []) == segments
        requests = mesh_requests(galaxy_url, prefix, start) if segments else []
        fractions[len(segments)] = coloured_fraction(page)
        screenshot(page, f"galaxy-neuroglancer-mesh-{len(segments)}.png")
        if segments:
            paths = {path.replace("%3A", ":") for _, path, _ in requests}
            for label in segments:
                assert f"{prefix}{label}:0" in paths, sorted(paths)
                assert f"{prefix}{label}:0:0" in paths, sorted(paths)
            assert {status for *_, status in requests} == {200}, requests
    assert fractions[3] > 0.02 and fractions[0] < fractions[3] / 10, fractions
    assert page.errors == [], page.errors


def mesh_requests(galaxy_url, prefix, since, timeout=90):
    """The mesh requests Galaxy served since `since`, once the three fragments are among them."""
    deadline = time.time() + timeout
    while True:
        found = [r for r in galaxy_requests("/datasets/", since=since, settle=1.0, timeout=10)
                 if r[1].startswith(prefix)]
        if sum(r[1].replace("%3A", ":").count(":0:") for r in found) >= 3 or time.time() > deadline:
            return found
        time.sleep(1)
