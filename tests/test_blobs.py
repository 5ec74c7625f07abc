"""`neurostation blobs`: chunk-wise LoG / DoG spots equal scikit-image's blob_log / blob_dog on
the whole volume (positions, sigmas, overlap pruning across boxes), physical units with
anisotropic voxels, 2D images, per-object counts against known placement; bad input gets one
`error:` line, exit 2."""

import numpy as np
import pandas as pd
import pytest
from skimage.feature import blob_dog, blob_log
from spot_synth import spots_volume
from test_predict import run_error
from test_qc import write_ome

from neurostation.chunks.boxes import plan_boxes
from neurostation.cli import main
from neurostation.processing import blobs

VOXEL_UM = (0.5, 0.5, 1.0)  # x, y, z


@pytest.fixture
def small_boxes(monkeypatch):
    """Boxes of 24 x 20 x 10 voxels: the test volume spans 3 x 3 x 3 of them."""
    monkeypatch.setattr(blobs, "candidate_boxes", lambda shape, *_: plan_boxes(shape, (24, 20, 10)))


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """A 26 x 52 x 60 (z, y, x) uint16 volume: 60 spots of sigma 1.5-2 voxels (some close
    pairs, some on box faces) on noise."""
    rng = np.random.default_rng(11)
    centres = rng.uniform((0, 0, 0), (26, 52, 60), (50, 3))
    pairs = centres[:10] + rng.normal(0, 3.5, (10, 3))  # overlapping neighbours to prune
    faces = [(10, 20, 24), (20, 40, 48), (9.5, 19.5, 23.5)]  # on the box faces
    zyx = spots_volume((26, 52, 60), np.vstack([centres, pairs, faces]), 1.7, noise=3000, seed=1)
    path = write_ome(tmp_path_factory.mktemp("blobs") / "spots.ome.tif", zyx, VOXEL_UM)
    return path, zyx


def run_blobs(path, out, *options):
    assert main(["blobs", str(path), "-o", str(out), *map(str, options)]) == 0
    return pd.read_csv(out, sep="\t")


def positions(table):
    return table[["z", "y", "x"]].to_numpy()


# (CLI options, skimage call on the (z, y, x) array); sigmas in um: x, y 2 voxels per um, z 1
CASES = {
    "log-voxels": (["--min-sigma", 1, "--max-sigma", 2.5, "--num-sigma", 4, "--threshold", 0.03],
                   lambda a: blob_log(a, (1.0,) * 3, (2.5,) * 3, num_sigma=4, threshold=0.03)),
    "log-um-overlap": (["--min-sigma", 0.5, "--max-sigma", 1.25, "--unit", "um", "--num-sigma", 3,
                        "--threshold", 0.02, "--overlap", 0.1],
                       lambda a: blob_log(a, (0.5, 1, 1), (1.25, 2.5, 2.5), num_sigma=3,
                                          threshold=0.02, overlap=0.1)),
    "log-log-scale": (["--min-sigma", 1, "--max-sigma", 2.5, "--num-sigma", 3, "--log-scale",
                       "--threshold", 0.03],
                      lambda a: blob_log(a, (1.0,) * 3, (2.5,) * 3, num_sigma=3, threshold=0.03,
                                         log_scale=True)),
    "dog": (["--method", "dog", "--min-sigma", 1, "--max-sigma", 2, "--threshold", 0.03],
            lambda a: blob_dog(a, (1.0,) * 3, (2.0,) * 3, threshold=0.03)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_blobs_as_skimage_on_the_whole_volume(tmp_path, volume, small_boxes, case):
    path, zyx = volume
    options, reference = CASES[case]
    table = run_blobs(path, tmp_path / "spots.tsv", *options)
    expected = reference(zyx)
    assert len(expected) > 30
    np.testing.assert_array_equal(positions(table), expected[:, :3])  # same order too
    sigma_um = (expected[:, 3:] * VOXEL_UM[::-1]).mean(axis=1)  # mean over the axes, in um
    np.testing.assert_allclose(table["sigma_um"], sigma_um, rtol=1e-6)
    np.testing.assert_allclose(table["radius_um"], sigma_um * np.sqrt(3), rtol=1e-6)
    for i, axis in enumerate("xyz"):
        np.testing.assert_allclose(table[f"{axis}_um"], table[axis] * VOXEL_UM[i])
    z, y, x = expected[:, :3].astype(int).T
    np.testing.assert_array_equal(table["intensity"], zyx[z, y, x])
    assert list(table["spot"]) == list(range(1, len(table) + 1))


def test_pruning_runs_across_boxes(tmp_path, volume, small_boxes):
    """Pruning every overlap (--overlap 0) drops spots kept without pruning (--overlap 1),
    some for a neighbour that another box found."""
    path, zyx = volume
    options = ["--min-sigma", 1, "--max-sigma", 2.5, "--num-sigma", 4, "--threshold", 0.03]
    pruned = run_blobs(path, tmp_path / "a.tsv", *options, "--overlap", 0)
    every = run_blobs(path, tmp_path / "b.tsv", *options, "--overlap", 1)
    np.testing.assert_array_equal(positions(every),
                                  blob_log(zyx, (1.0,) * 3, (2.5,) * 3, num_sigma=4,
                                           threshold=0.03, overlap=1)[:, :3])
    np.testing.assert_array_equal(positions(pruned),
                                  blob_log(zyx, (1.0,) * 3, (2.5,) * 3, num_sigma=4,
                                           threshold=0.03, overlap=0)[:, :3])
    dropped = {tuple(p) for p in positions(every)} - {tuple(p) for p in positions(pruned)}
    assert len(dropped) >= 5
    box = np.array([10, 20, 24])  # z, y, x of the test boxes
    survivors = positions(pruned)
    across = 0
    for spot in np.array(sorted(dropped)):
        near = survivors[np.abs(survivors - spot).max(axis=1) <= 4]
        across += bool(((near // box) != spot // box).any(axis=1).any())
    assert across >= 1  # a spot dropped for a neighbour found by another box


def test_parallel_jobs_give_the_same_spots(tmp_path, volume, small_boxes):
    path, _ = volume
    options = ["--min-sigma", 1, "--max-sigma", 2, "--num-sigma", 3, "--threshold", 0.03]
    one = run_blobs(path, tmp_path / "a.tsv", *options)
    two = run_blobs(path, tmp_path / "b.tsv", *options, "--jobs", 2)
    pd.testing.assert_frame_equal(one, two)


def test_on_a_dask_cluster_equals_local(tmp_path, volume, small_boxes):
    """--scheduler: the boxes run on a loopback Dask cluster; the table is the local one."""
    from distributed import LocalCluster

    path, _ = volume
    options = ["--min-sigma", 1, "--max-sigma", 2, "--num-sigma", 3, "--threshold", 0.03]
    local = run_blobs(path, tmp_path / "a.tsv", *options)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        remote = run_blobs(path, tmp_path / "b.tsv", *options, "--scheduler",
                           cluster.scheduler_address)
    pd.testing.assert_frame_equal(local, remote)


def test_2d_image(tmp_path, small_boxes):
    yx = spots_volume((1, 70, 90), np.random.default_rng(3).uniform((0, 0, 0), (0, 70, 90), (30, 3)),
                      (1, 2, 2), noise=2000)
    path = write_ome(tmp_path / "plane.ome.tif", yx, VOXEL_UM)
    table = run_blobs(path, tmp_path / "s.tsv", "--min-sigma", 1, "--max-sigma", 3,
                      "--num-sigma", 5, "--threshold", 0.05)
    expected = blob_log(yx[0], 1, 3, num_sigma=5, threshold=0.05)
    assert len(expected) > 15
    np.testing.assert_array_equal(table[["y", "x"]].to_numpy(), expected[:, :2])
    assert (table["z"] == 0).all()
    np.testing.assert_allclose(table["radius_um"], expected[:, 2] * 0.5 * np.sqrt(2))


def test_spots_counted_per_object(tmp_path, small_boxes):
    """Cell 1 holds 3 spots, cell 2 none, cell 7 two (one on a box face); one spot outside."""
    labels = np.zeros((20, 40, 48), np.uint16)
    labels[2:12, 4:18, 4:22] = 1
    labels[2:12, 24:36, 4:20] = 2
    labels[8:20, 10:38, 26:46] = 7
    inside = {1: [(6, 8, 8), (6, 12, 16), (9, 14, 10)], 7: [(14, 20, 30), (10, 30, 40)]}
    centres = [c for cs in inside.values() for c in cs] + [(16, 4, 10)]
    zyx = spots_volume(labels.shape, centres, 1.5, noise=500)
    image = write_ome(tmp_path / "image.ome.tif", zyx, VOXEL_UM)
    cells = write_ome(tmp_path / "cells.ome.tif", labels, VOXEL_UM)
    table = run_blobs(image, tmp_path / "spots.tsv", "--min-sigma", 1, "--max-sigma", 2,
                      "--num-sigma", 3, "--threshold", 0.05, "--labels", cells,
                      "--counts", tmp_path / "counts.tsv")
    assert sorted(map(tuple, positions(table))) == sorted(centres)
    expected = {c: label for label, cs in inside.items() for c in cs} | {(16, 4, 10): 0}
    assert {tuple(p): label for p, label in zip(positions(table), table["label"])} == expected
    counts = pd.read_csv(tmp_path / "counts.tsv", sep="\t")
    assert counts.to_dict("list") == {"label": [1, 2, 7], "spots": [3, 0, 2]}


def test_bad_input(tmp_path, volume, capsys):
    path, zyx = volume
    small = write_ome(tmp_path / "small.ome.tif", zyx[:, :, :30], VOXEL_UM)
    floats = write_ome(tmp_path / "float.ome.tif", zyx.astype(np.float32), VOXEL_UM)
    out = tmp_path / "spots.tsv"
    cases = [
        (["--labels", small], "error: the label image small.ome.tif is 30x52x26 voxels but the "
         "image spots.ome.tif is 60x52x26 (x, y, z): they must have the same shape"),
        (["--min-sigma", 3, "--max-sigma", 2], "error: --min-sigma 3 is larger than --max-sigma 2"),
        (["--labels", floats], "error: float.ome.tif holds float32 values; a label volume holds "
         "integers (0 = background, one number per object)"),
        (["--counts", tmp_path / "c.tsv"],
         "error: --counts needs --labels: the label image whose objects get the spots"),
        (["--threshold", 0], "error: --threshold must be positive, got 0"),
        (["--overlap", 1.5], "error: --overlap must be between 0 and 1, got 1.5"),
        (["--min-sigma", 0], "error: --min-sigma must be positive, got 0"),
        (["--channel", 1], "error: --channel 1 does not exist: spots.ome.tif has 1 channel(s), "
         "0 to 0"),
    ]
    for options, message in cases:
        assert run_error(capsys, path, "-o", out, *options, command="blobs") == message
    assert not list(tmp_path.glob("spots*")) and not list(tmp_path.glob("c*.tsv"))
