"""`neurostation label --split`: watershed splitting per object inside its bounding box equals
the same procedure applied to each object on the whole volume in memory (identical labels,
numbered by first voxel), across small boxes, with the size filter and border removal."""

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed
from test_label import error_line, filtered, reference, run_label, same_partition, write_zyx

from neurostation.processing import label as label_cmd
from neurostation.processing import split

VOXEL_UM = (0.5, 0.5, 1.0)  # x, y, z
REACH = {6: 1, 18: 2, 26: 3}


@pytest.fixture
def small_boxes(monkeypatch):
    """Labelling boxes of 13 x 11 x 5 voxels (balls span several) and batches of a few objects
    per task."""
    monkeypatch.setattr(label_cmd, "box_size", lambda shape, voxel_nm, args: (13, 11, 5))
    monkeypatch.setattr(split, "BATCH_OBJECTS", 3)


def balls(shape, centres_radii, voxel_um=VOXEL_UM):
    """A (z, y, x) mask of balls given by (x, y, z, radius) in µm."""
    z, y, x = np.indices(shape) * np.array(voxel_um[::-1])[:, None, None, None]
    mask = np.zeros(shape, bool)
    for cx, cy, cz, r in centres_radii:
        mask |= (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r
    return mask


def clusters(seed, shape=(14, 48, 64), cell=8.0):
    """Balls in cells of `cell` µm: per cell one ball, or two or three overlapping ones (random
    radii 1.4-2.4 µm, centres 1.1-1.6 radii apart), cells side by side so some clusters touch."""
    rng = np.random.default_rng(seed)
    extent = np.array(shape[::-1]) * VOXEL_UM
    specs = []
    for cx in np.arange(cell / 2, extent[0], cell):
        for cy in np.arange(cell / 2, extent[1], cell):
            centre = np.array([cx, cy, extent[2] / 2]) + rng.uniform(-1, 1, 3)
            r = rng.uniform(1.4, 2.4)
            specs.append((*centre, r))
            for _ in range(rng.integers(0, 3)):
                step = rng.normal(size=3) * (1, 1, 0.3)
                centre = centre + step / np.linalg.norm(step) * r * rng.uniform(1.1, 1.6)
                r = rng.uniform(1.4, 2.4)
                specs.append((*centre, r))
    return balls(shape, specs)


def split_reference(objects, h_nm, connectivity, voxel_um=VOXEL_UM):
    """Each object of a (z, y, x) label image alone on the whole volume: distance transform with
    the voxel size (nm), h-maxima seeds, watershed of -distance; pieces numbered 1..N by their
    first voxel, x fastest."""
    footprint = ndimage.generate_binary_structure(3, REACH[connectivity])
    spacing = tuple(v * 1000 for v in voxel_um[::-1])
    pieces = []
    for label in range(1, objects.max() + 1):
        mask = objects == label
        distance = ndimage.distance_transform_edt(mask, sampling=spacing)
        seeds, n = ndimage.label(h_maxima(distance, h_nm, footprint=footprint) & mask, footprint)
        parts = (watershed(-distance, seeds, mask=mask, connectivity=REACH[connectivity])
                 if n >= 2 else mask.astype(int))
        pieces += [parts == k for k in range(1, parts.max() + 1)]
    firsts = [np.flatnonzero(p.transpose(2, 1, 0).ravel(order="F"))[0] for p in pieces]
    out = np.zeros(objects.shape, np.uint32)
    for rank, i in enumerate(np.argsort(firsts)):
        out[pieces[i]] = rank + 1
    return out


def test_two_touching_balls_split_and_a_lone_ball_stays_whole(tmp_path, small_boxes, data):
    """test-data split_spheres: two balls of 3 µm overlapping (one object) and a ball of 2.5 µm
    (0.5 x 0.5 x 1 µm voxels), all spanning several 13 x 11 x 5 boxes."""
    mask = tifffile.imread(data("split_spheres.ome.tif")).astype(bool)
    out = tmp_path / "split.tif"
    assert run_label(data("split_spheres.ome.tif"), "-o", out, "--split") == 0
    labels = tifffile.imread(out)
    whole = reference(mask, 26)
    assert whole.max() == 2 and labels.max() == 3
    np.testing.assert_array_equal(labels, split_reference(whole, 500.0, 26))
    pair, lone = whole == 1, whole == 2
    assert set(np.unique(labels[pair])) == {1, 2} and np.unique(labels[lone]).tolist() == [3]
    columns = [np.flatnonzero((labels == k).any(axis=(0, 1))) for k in (1, 2)]
    assert {columns[0].max(), columns[1].min()} <= {14, 15}  # cut at the neck (x 14.5 voxels)
    for piece in (1, 2):  # each piece is one 26-connected piece of the pair's voxels
        assert ndimage.label(labels == piece, np.ones((3, 3, 3)))[1] == 1


@pytest.mark.parametrize("connectivity", [6, 26])
def test_many_touching_balls_equal_the_whole_volume_procedure(tmp_path, small_boxes,
                                                              connectivity):
    mask = clusters(3)
    src = write_zyx(tmp_path / "balls.ome.tif", mask.astype(np.uint8), VOXEL_UM)
    assert run_label(src, "-o", tmp_path / "s.tif", "--split", "--connectivity", connectivity,
                     "--jobs", "2") == 0
    labels = tifffile.imread(tmp_path / "s.tif")
    whole = reference(mask, connectivity)
    expected = split_reference(whole, 500.0, connectivity)
    assert expected.max() > whole.max() + 3  # several objects really split
    np.testing.assert_array_equal(labels, expected)


def test_split_h_in_a_unit_size_filter_and_border_removal(tmp_path, small_boxes):
    """The size filter and border removal act on the objects before splitting."""
    mask = clusters(8, cell=7.0) | balls((14, 48, 64), [(2.0, 2.0, 7.0, 0.6), (30.0, 3.0, 7.0, 0.6)])
    src = write_zyx(tmp_path / "balls.ome.tif", mask.astype(np.uint8), VOXEL_UM)
    kept = filtered(reference(mask, 26), min_voxels=40, remove_border=True)
    expected = split_reference(kept, 300.0, 26)
    assert kept.max() >= 3 and expected.max() > kept.max()
    assert run_label(src, "-o", tmp_path / "s.tif", "--split", "--split-h", "0.3um",
                     "--min-size", "10um3", "--remove-border") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.tif"), expected)
    # a larger h keeps more objects whole
    assert run_label(src, "-o", tmp_path / "h.tif", "--split", "--split-h", "5",
                     "--min-size", "40", "--remove-border") == 0
    high = tifffile.imread(tmp_path / "h.tif")
    assert kept.max() <= high.max() < expected.max()
    np.testing.assert_array_equal(high, split_reference(kept, 2500.0, 26))


def test_precomputed_split_labels(tmp_path, small_boxes, data):
    out = tmp_path / "labels"
    assert run_label(data("split_spheres.ome.tif"), "-o", out, "--split", "--chunk-size",
                     "8,8,4") == 0
    record = json.loads((out / "neurostation.json").read_text())
    assert record["objects"] == 3 and record["objects_before_split"] == 2
    assert record["split_h_nm"] == 500.0
    from test_ingest import read_with_tensorstore
    mask = tifffile.imread(data("split_spheres.ome.tif")).astype(bool)
    labels = read_with_tensorstore(out, 0)[..., 0].transpose(2, 1, 0)
    assert same_partition(labels, split_reference(reference(mask, 26), 500.0, 26))


@pytest.mark.parametrize("args,message", [
    (["--split-h", "2"], "error: --split-h applies with --split"),
    (["--split", "--split-h", "0"], "error: --split-h must be a positive length"),
    (["--split", "--split-h", "2km"], "error: --split-h unit must be nm, um or mm, got '2km'"),
])
def test_bad_split_options(tmp_path, cli, data, args, message):
    result = cli("label", data("split_spheres.ome.tif"), "-o", tmp_path / "out.tif", *args)
    assert error_line(result).startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_split_on_a_dask_cluster_equals_local(tmp_path, small_boxes):
    """--scheduler: the object batches run on a loopback Dask cluster's workers (they share this
    machine's temporary folder), and the labels equal the local run's."""
    from distributed import Client, LocalCluster

    mask = clusters(3)
    src = write_zyx(tmp_path / "balls.ome.tif", mask.astype(np.uint8), VOXEL_UM)
    assert run_label(src, "-o", tmp_path / "local.tif", "--split") == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert run_label(src, "-o", tmp_path / "dask.tif", "--split", "--scheduler",
                         cluster.scheduler_address) == 0
        ran = client.run_on_scheduler(lambda dask_scheduler: {
            name: prefix.state_counts.get("memory", 0)
            for name, prefix in dask_scheduler.task_prefixes.items()})
    labels = tifffile.imread(tmp_path / "dask.tif")
    np.testing.assert_array_equal(labels, tifffile.imread(tmp_path / "local.tif"))
    objects = int(reference(mask, 26).max())
    assert labels.max() > objects and ran["SplitTask"] == -(-objects // split.BATCH_OBJECTS)
