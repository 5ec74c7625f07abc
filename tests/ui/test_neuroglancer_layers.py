"""The Neuroglancer plugin's layers, as a biologist meets them in Galaxy.

Against the live local Galaxy (GALAXY_URL, GALAXY_ADMIN_KEY), in headless Chromium:
- a segmentation volume (test-data/labels_vol) streams from Galaxy and is drawn in Neuroglancer's
  own segment colours, which go away when the layer is hidden; a double-click selects a segment;
- a viewer state pasted as a `json` dataset (what the "Make viewer link" tool writes) overlays
  an image and a segmentation volume: both are streamed and drawn, selected segments only;
  the state the Galaxy tool itself writes opens as written;
- an image layer's default contrast is numpy's 1st-99th percentile of its coarsest scale;
- the history panel's Visualize button leads to the viewer (clicked, as a user does);
- the goal: on a 512 x 512 x 256 volume with a pyramid, one view fetches a small part of the
  chunk files (counted in Galaxy's access log), with the time to the first chunk and to the
  drawn view printed.
"""

import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from galaxy_viewer import (PACKAGE_PYTHON, PLUGIN_FRAME, TEST_DATA, VIEWER, chunk_requests,
                           coarsest_scale_contrast, colour_masks, galaxy_requests, login,
                           open_plugin, paste_json, pixels, segment_colours, set_visible,
                           upload_directory, viewer_state, wait_ready)

IMAGE = os.path.join(TEST_DATA, "vol_ome")
LABELS = os.path.join(TEST_DATA, "labels_vol")
SEGMENTS = (1, 2, 3)  # the labels of labels_vol, side by side in x (scripts/make_test_data.py)
# Pixels a segment covers in the four panels at the first view (each is over a thousand).
MIN_SEGMENT_PIXELS = 200


@pytest.fixture(scope="module")
def history(user):
    gi = user["gi"]
    history = gi.histories.create_history("neuroglancer layers test")
    yield history
    gi.histories.delete_history(history["id"], purge=True)


@pytest.fixture(scope="module")
def image(user, history, tmp_path_factory):
    return upload_directory(user["gi"], history["id"], IMAGE, "neuroglancer_precomputed",
                            tmp_path_factory.mktemp("upload"))


@pytest.fixture(scope="module")
def labels(user, history, tmp_path_factory):
    dataset = upload_directory(user["gi"], history["id"], LABELS, "neuroglancer_precomputed",
                               tmp_path_factory.mktemp("upload"))
    assert dataset["state"] == "ok"
    return dataset


def open_and_wait(page, galaxy_url, user, dataset_id):
    """Log in, open the plugin on a dataset; the Galaxy requests under /datasets/ it caused,
    once the view is drawn."""
    login(page, galaxy_url, user)
    start = time.time()
    open_plugin(page, galaxy_url, dataset_id)
    requests = galaxy_requests("/datasets/", since=start)
    wait_ready(page)  # after the chunks came: isReady() is also true before any was asked for
    return start, requests


def test_segmentation_is_drawn_in_segment_colours_and_selectable(page, galaxy_url, user, labels,
                                                                 screenshot):
    _, requests = open_and_wait(page, galaxy_url, user, labels["id"])
    chunks = chunk_requests(requests, labels["id"])
    assert chunks and {status for *_, status in chunks} == {200}, requests
    layer = viewer_state(page)["layers"][0]
    assert (layer["type"], layer["name"]) == ("segmentation", "labels_vol")
    assert not layer.get("segments")  # nothing selected: every segment is drawn
    # Axes in the volume's physical units (250 x 250 x 1000 nm voxels), view centred on it.
    state = viewer_state(page)
    assert state["dimensions"] == {"x": [2.5e-7, "m"], "y": [2.5e-7, "m"], "z": [1e-6, "m"]}
    assert state["position"] == [10.5, 8.5, 2.5]  # the centre of the middle voxel of 20 x 16 x 4

    colours = segment_colours(page, "labels_vol", SEGMENTS)
    iframe = page.locator(PLUGIN_FRAME)
    screenshot(page, "galaxy-neuroglancer-segmentation.png")
    shown = colour_masks(pixels(iframe, "RGB"), colours)
    counts = {k: int(mask.sum()) for k, mask in shown.items()}
    assert min(counts.values()) >= MIN_SEGMENT_PIXELS, counts
    set_visible(page, "labels_vol", False)
    hidden = {k: int(mask.sum()) for k, mask in colour_masks(pixels(iframe, "RGB"), colours).items()}
    assert max(hidden.values()) < MIN_SEGMENT_PIXELS / 10, hidden

    # A double-click on segment 3 (inside it, away from its edges) selects it: only it is drawn.
    set_visible(page, "labels_vol", True)
    inside = shown[3].copy()
    for dy, dx in [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]:
        inside &= np.roll(shown[3], (dy, dx), axis=(0, 1))
    rows, cols = np.nonzero(inside)
    assert rows.size, "segment 3 has no interior pixel to click"
    pick = np.argmin(np.abs(rows - np.median(rows)) + np.abs(cols - np.median(cols)))
    box = iframe.bounding_box()
    page.mouse.dblclick(box["x"] + float(cols[pick]), box["y"] + float(rows[pick]))
    page.wait_for_function(f"() => {VIEWER}.state.toJSON().layers[0].segments?.length > 0",
                           timeout=30_000)
    assert viewer_state(page)["layers"][0]["segments"] == ["3"]
    page.mouse.move(1, 1)  # off the viewer: no hover highlight
    wait_ready(page)
    time.sleep(1)
    selected = {k: int(m.sum()) for k, m in colour_masks(pixels(iframe, "RGB"), colours).items()}
    assert selected[3] >= MIN_SEGMENT_PIXELS, selected
    assert max(selected[1], selected[2]) < MIN_SEGMENT_PIXELS / 10, selected
    assert page.errors == [], page.errors


def overlay_state(galaxy_url, image, labels):
    """A viewer state as the "Make viewer link" tool writes it: two precomputed layers read
    from Galaxy's display URLs, segments 1 and 3 selected, no contrast for the image."""
    return {
        "dimensions": {"x": [2.5e-7, "m"], "y": [2.5e-7, "m"], "z": [1e-6, "m"]},
        "position": [10, 8, 2],
        "crossSectionScale": 0.06,
        "layout": "4panel",
        "layers": [
            {"type": "image", "name": "image",
             "source": f"precomputed://{galaxy_url}/datasets/{image['id']}/display"},
            {"type": "segmentation", "name": "labels", "segments": ["1", "3"],
             "source": f"precomputed://{galaxy_url}/datasets/{labels['id']}/display"},
        ],
        "selectedLayer": {"layer": "labels"},
    }


def assert_overlay_drawn(page, screenshot, image_name, labels_name, selected, unselected):
    """Both layers change the picture, and over a black background the label layer shows the
    selected segments in their own colours, the others not at all."""
    iframe = page.locator(PLUGIN_FRAME)
    screenshot(page, f"galaxy-neuroglancer-overlay-{labels_name}.png")
    both = pixels(iframe, "RGB")
    set_visible(page, labels_name, False)
    image_only = pixels(iframe, "RGB")
    set_visible(page, labels_name, True)
    set_visible(page, image_name, False)
    labels_only = pixels(iframe, "RGB")
    for name, other in ((labels_name, image_only), (image_name, labels_only)):
        changed = (np.abs(both - other).max(axis=2) > 16).mean()
        assert changed > 0.01, f"the {name} layer changes only {changed:.2%} of the view"
    found = {k: int(m.sum()) for k, m in colour_masks(
        labels_only, segment_colours(page, labels_name, SEGMENTS)).items()}
    assert min(found[k] for k in selected) >= MIN_SEGMENT_PIXELS, found
    assert max(found[k] for k in unselected) < MIN_SEGMENT_PIXELS / 10, found


def test_state_overlays_image_and_segmentation(page, galaxy_url, user, history, image, labels,
                                               screenshot):
    state = overlay_state(galaxy_url, image, labels)
    dataset = paste_json(user["gi"], history["id"], state, name="overlay.json")
    _, requests = open_and_wait(page, galaxy_url, user, dataset["id"])
    for volume in (image, labels):
        chunks = chunk_requests(requests, volume["id"])
        assert chunks and {status for *_, status in chunks} == {200}, (volume["name"], requests)
    restored = viewer_state(page)
    assert [(layer["name"], layer["type"], layer["source"]) for layer in restored["layers"]] == \
        [(layer["name"], layer["type"], layer["source"]) for layer in state["layers"]]
    assert restored["layers"][1]["segments"] == ["1", "3"]
    assert restored["position"] == state["position"]
    # The image had no contrast in the state: it gets the default one.
    assert restored["layers"][0]["shaderControls"]["normalized"]["range"] == \
        coarsest_scale_contrast(IMAGE)
    assert_overlay_drawn(page, screenshot, "image", "labels", selected=(1, 3), unselected=(2,))
    assert page.errors == [], page.errors


def test_state_written_by_make_viewer_link_opens(page, galaxy_url, user, history, image, labels,
                                                 screenshot):
    """The other half of the contract: the `json` state the Galaxy tool writes (segments 1, 2
    selected) opens here as written, its contrast kept, both volumes streamed and drawn."""
    gi = user["gi"]
    run = gi.tools.run_tool(history["id"], "ns_make_viewer_link", {
        "volumes": {"values": [{"src": "hda", "id": image["id"]}]},
        "segmentation_volumes": {"values": [{"src": "hda", "id": labels["id"]}]},
        "segments": "1,2"})
    state_output = next(o for o in run["outputs"] if o["output_name"] == "state")
    gi.datasets.wait_for_dataset(state_output["id"], maxwait=600)
    written = json.loads(gi.datasets.download_dataset(state_output["id"]))
    _, requests = open_and_wait(page, galaxy_url, user, state_output["id"])
    for volume in (image, labels):
        chunks = chunk_requests(requests, volume["id"])
        assert chunks and {status for *_, status in chunks} == {200}, (volume["name"], requests)
    restored = viewer_state(page)
    for key in ("dimensions", "position", "layout"):
        assert restored[key] == written[key], key
    def described(layer):
        return (layer["name"], layer["source"],
                layer.get("shaderControls", {}).get("normalized", {}).get("range"))

    assert [described(layer) for layer in restored["layers"]] == \
        [described(layer) for layer in written["layers"]]
    assert written["layers"][0]["shaderControls"]["normalized"]["range"] == \
        coarsest_scale_contrast(IMAGE)  # the tool's contrast is the plugin's default one
    assert_overlay_drawn(page, screenshot, "vol_ome", "labels_vol", selected=(1, 2), unselected=(3,))
    assert page.errors == [], page.errors


@pytest.mark.parametrize("layer, source, message", [
    (1, "precomputed://file:///data/labels",
     'layer "labels" of bad.json points to file:///data/labels, which a browser cannot open'),
    (0, "precomputed://{galaxy}/datasets/0000000000000000/display",
     'layer "image" of bad.json: cannot read {galaxy}/datasets/0000000000000000/display/info: HTTP 4'),
])
def test_state_with_a_source_that_cannot_be_read_is_reported(page, galaxy_url, user, history,
                                                             image, labels, layer, source,
                                                             message):
    state = overlay_state(galaxy_url, image, labels)
    state["layers"][layer]["source"] = source.format(galaxy=galaxy_url)
    dataset = paste_json(user["gi"], history["id"], state, name="bad.json")
    login(page, galaxy_url, user)
    open_plugin(page, galaxy_url, dataset["id"])
    shown = page.frame_locator(PLUGIN_FRAME).get_by_text("NeuroStation viewer:")
    shown.wait_for(timeout=60_000)
    assert message.format(galaxy=galaxy_url) in shown.inner_text()


def test_default_contrast_is_the_coarsest_scale_percentiles(page, galaxy_url, user, image):
    open_and_wait(page, galaxy_url, user, image["id"])
    layer = viewer_state(page)["layers"][0]
    assert layer["type"] == "image"
    assert layer["shaderControls"]["normalized"]["range"] == coarsest_scale_contrast(IMAGE)
    assert page.errors == [], page.errors


def test_visualize_button_in_the_history_opens_the_viewer(page, galaxy_url, user, history,
                                                          labels, screenshot):
    login(page, galaxy_url, user)
    # The history the datasets are in becomes the current one (as the history switcher does).
    switched = page.request.put(f"{galaxy_url}/history/set_as_current",
                                params={"id": history["id"]})
    assert switched.ok, switched.text()
    page.goto(f"{galaxy_url}/", wait_until="domcontentloaded")
    item = page.locator(f"[data-hid='{labels['hid']}']").first
    item.locator(".content-title").click()  # expand the dataset
    item.get_by_role("link", name="Visualize").click()
    entry = page.get_by_text("Neuroglancer (NeuroStation)", exact=True)
    entry.click(timeout=60_000)
    page.errors.clear()
    page.mouse.move(1, 1)  # off the viewer: no hover highlight, no panel tooltip
    wait_ready(page)
    assert page.url.endswith(f"/visualizations/display?visualization=neuroglancer"
                             f"&dataset_id={labels['id']}")
    screenshot(page, "galaxy-neuroglancer-from-history.png")
    colours = segment_colours(page, "labels_vol", SEGMENTS)
    counts = {k: int(m.sum()) for k, m in
              colour_masks(pixels(page.locator(PLUGIN_FRAME), "RGB"), colours).items()}
    assert min(counts.values()) >= MIN_SEGMENT_PIXELS, counts
    assert page.errors == [], page.errors


# The goal to measure: a volume bigger than a view, 64³ chunks, a pyramid.
LARGE_SHAPE_ZYX = (256, 512, 512)
LARGE_WRITER = """
import os, sys, numpy as np, tifffile
y, x = np.ogrid[:512, :512]
for z in range(256):
    plane = 110 + 60 * np.sin(x / 13.0) * np.sin(y / 17.0) * np.cos(z / 11.0) + 0.2 * z
    tifffile.imwrite(os.path.join(sys.argv[1], f"z{z:03d}.tif"), plane.astype(np.uint8))
"""


@pytest.fixture(scope="module")
def large_volume(tmp_path_factory):
    """512 x 512 x 256 uint8 (0.5 um voxels), 64³ raw chunks and its pyramid, written by
    `neurostation ingest` from a folder of TIFF slices."""
    folder = tmp_path_factory.mktemp("large")
    slices, volume = folder / "slices", folder / "large_volume"
    slices.mkdir()
    subprocess.run([PACKAGE_PYTHON, "-c", LARGE_WRITER, str(slices)], check=True)
    subprocess.run([os.path.join(os.path.dirname(PACKAGE_PYTHON), "neurostation"), "ingest",
                    str(slices), "-o", str(volume), "--voxel-size", "0.5,0.5,0.5", "--voxel-unit",
                    "um", "--chunk-size", "64,64,64", "--jobs", "2"], check=True,
                   capture_output=True)
    shutil.rmtree(slices)
    return volume


def test_one_view_fetches_a_small_part_of_a_large_volume(page, galaxy_url, user, history,
                                                          large_volume, tmp_path_factory):
    dataset = upload_directory(user["gi"], history["id"], str(large_volume),
                               "neuroglancer_precomputed", tmp_path_factory.mktemp("upload"))
    start, requests = open_and_wait(page, galaxy_url, user, dataset["id"])
    drawn = time.time()
    chunks = chunk_requests(requests, dataset["id"])
    assert chunks and {status for *_, status in chunks} == {200}
    scales = sorted((p.name for p in large_volume.iterdir() if p.is_dir()),
                    key=lambda key: float(key.split("_")[0]))
    total = {key: len(os.listdir(large_volume / key)) for key in scales}
    fetched = {key: len({name for _, k, name, _ in chunks if k == key}) for key in scales}
    first = min(t for t, *_ in chunks) - start
    print(f"\n{LARGE_SHAPE_ZYX[::-1]} voxels, 64³ chunks: distinct chunk files fetched / total "
          f"per scale: {', '.join(f'{k}: {fetched[k]}/{total[k]}' for k in scales)}; "
          f"all scales {sum(fetched.values())}/{sum(total.values())} "
          f"({sum(fetched.values()) / sum(total.values()):.0%}); {len(chunks)} chunk requests; "
          f"first chunk served {first:.1f} s after opening, view drawn by {drawn - start:.1f} s")
    assert sum(fetched.values()) < sum(total.values()) / 3, (fetched, total)
    layer = viewer_state(page)["layers"][0]
    assert layer["shaderControls"]["normalized"]["range"] == coarsest_scale_contrast(large_volume)

    # Zoomed in to full resolution (one voxel per screen pixel): finest-scale chunks in view only.
    zoomed = time.time()
    page.evaluate(f"() => {{ const viewer = {VIEWER}; viewer.crossSectionScale.value = 1; }}")
    requests = galaxy_requests(f"/datasets/{dataset['id']}/display/", since=zoomed)
    wait_ready(page)
    finest = scales[0]
    fine = {name for _, k, name, _ in chunk_requests(requests, dataset["id"]) if k == finest}
    print(f"zoomed to full resolution: {len(fine)}/{total[finest]} chunk files of {finest} "
          f"fetched, view drawn {time.time() - zoomed:.1f} s after the zoom")
    assert 0 < len(fine) < total[finest] / 2, (len(fine), total[finest])
    assert page.errors == [], page.errors
