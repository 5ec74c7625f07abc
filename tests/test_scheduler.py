"""`--scheduler`: the box tasks of filter → threshold → label → measure run on a Dask cluster
started on loopback by the test; every output equals the local run's (bitwise / row for row),
the scheduler saw one task per box, and a wrong address stops with one line."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
from distributed import Client, LocalCluster
from label_synth import partition, write_ome

from neurostation.analysis.objects import inputs
from neurostation.cli import main
from neurostation.processing import filter as filter_image
from neurostation.processing import label as label_cmd


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes and a scheduler, all on 127.0.0.1."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local, Client(local) as client:
        yield local.scheduler_address, client


@pytest.fixture
def small_boxes(monkeypatch):
    """Plans of many small boxes in this (the client) process; the workers only run them."""
    monkeypatch.setattr(filter_image, "BOX_BUDGET", 16 * 16 * 8 * 4)
    monkeypatch.setattr(label_cmd, "box_size", lambda shape, voxel_nm, args: (11, 9, 7))
    monkeypatch.setattr(inputs, "box_shape", lambda source: (12, 10, 6))


def finished_tasks(client):
    """Tasks that reached memory on the scheduler so far, by task name prefix."""
    return client.run_on_scheduler(lambda dask_scheduler: {
        name: prefix.state_counts.get("memory", 0)
        for name, prefix in dask_scheduler.task_prefixes.items()})


def pipeline(stack, folder, extra):
    """filter → threshold → label → measure with the given extra options; the outputs."""
    smooth, mask, labels, table = (folder / n for n in
                                   ("smooth.ome.tif", "mask.ome.tif", "labels.ome.tif", "objects.tsv"))
    for argv in (["filter", stack, "-o", smooth, "--method", "gaussian", "--sigma", "1"],
                 ["threshold", smooth, "-o", mask, "--method", "otsu"],
                 ["label", mask, "-o", labels],
                 ["measure", labels, "--intensity", stack, "-o", table]):
        assert main([str(a) for a in argv + extra]) == 0, argv
    return (tifffile.imread(smooth), tifffile.imread(mask), tifffile.imread(labels),
            pd.read_csv(table, sep="\t"))


def test_pipeline_on_cluster_equals_local(cluster, small_boxes, tmp_path):
    address, client = cluster
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[:20, :40, :44]
    blobs = sum(3000 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + 4 * (z - cz) ** 2) / 12.0)
                for cx, cy, cz in rng.uniform((0, 0, 0), (44, 40, 20), (25, 3)))
    stack = write_ome(tmp_path / "stack.ome.tif",
                      (blobs + rng.integers(0, 300, z.shape)).astype(np.uint16))
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    local = pipeline(stack, tmp_path / "local", ["--jobs", "1"])
    before = finished_tasks(client)
    remote = pipeline(stack, tmp_path / "dask", ["--scheduler", address])
    after = finished_tasks(client)

    for ours, theirs in zip(remote[:3], local[:3]):
        assert np.array_equal(ours, theirs)
    pd.testing.assert_frame_equal(remote[3], local[3])
    assert local[2].max() >= 10 and len(local[3]) == local[2].max()

    ran = {name: after[name] - before.get(name, 0) for name in after}
    label_boxes = 4 * 5 * 3  # 44 x 40 x 20 voxels in 11 x 9 x 7 boxes
    assert ran["FirstPass"] == label_boxes and ran["Contacts"] == label_boxes
    assert sum(ran.values()) > 3 * label_boxes  # the filter, threshold and measure boxes too


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "neurostation.cli", *map(str, argv)],
                          capture_output=True, text=True, timeout=120)


def error_line(result):
    lines = [line for line in result.stderr.splitlines() if not line.startswith("progress:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


def test_unreachable_scheduler_stops_with_one_line(tmp_path):
    labels = write_ome(tmp_path / "labels.ome.tif", np.ones((4, 5, 6), np.uint8))
    out = tmp_path / "objects.tsv"
    result = run_cli("measure", labels, "-o", out, "--scheduler", "tcp://127.0.0.1:9")
    assert error_line(result).startswith(
        "error: cannot reach the Dask scheduler at tcp://127.0.0.1:9: Timed out")
    assert not out.exists()


def test_malformed_address(tmp_path):
    labels = write_ome(tmp_path / "labels.ome.tif", np.ones((4, 5, 6), np.uint8))
    result = run_cli("measure", labels, "-o", tmp_path / "t.tsv", "--scheduler", "localhost")
    assert error_line(result) == (
        "error: --scheduler must be an address like tcp://HOST:PORT, got 'localhost'")


def test_count_and_compare_on_cluster_equal_local(cluster, small_boxes, tmp_path):
    """count and compare send one task per box to the cluster and write what a local run writes."""
    address, client = cluster
    truth = partition((20, 40, 44), 30, seed=8)
    pred = np.roll(truth, 1, axis=2)
    paths = [write_ome(tmp_path / f"{n}.ome.tif", a) for n, a in (("pred", pred), ("truth", truth))]
    runs = {}
    for where, extra in (("local", ["--jobs", "1"]), ("dask", ["--scheduler", address])):
        before = finished_tasks(client)
        counts, metrics = tmp_path / f"counts_{where}.tsv", tmp_path / f"metrics_{where}.tsv"
        assert main(["count", *paths, "-o", str(counts), *extra]) == 0
        assert main(["compare", *paths, "-o", str(metrics), *extra]) == 0
        after = finished_tasks(client)
        runs[where] = ({n: after[n] - before.get(n, 0) for n in after},
                       pd.read_csv(counts, sep="\t"), pd.read_csv(metrics, sep="\t"))
    boxes = 4 * 4 * 4  # 44 x 40 x 20 voxels in 12 x 10 x 6 boxes
    assert runs["dask"][0]["_BoxLabels"] == 2 * boxes and runs["dask"][0]["_BoxPairs"] == boxes
    assert not runs["local"][0].get("_BoxLabels")
    pd.testing.assert_frame_equal(runs["dask"][1], runs["local"][1])
    pd.testing.assert_frame_equal(runs["dask"][2], runs["local"][2])
    assert list(runs["local"][1]["objects"]) == [30, 30]
    assert 0 < runs["local"][2]["true_positives"][0] < 30


def test_relative_paths_reach_the_workers(cluster, monkeypatch, tmp_path):
    """Inputs named relative to our working folder (Galaxy's wrappers link them into
    `inputs/`) are read by workers that run in another folder."""
    address, _ = cluster
    labels = partition((6, 12, 10), 5, seed=2)
    (tmp_path / "inputs").mkdir()
    write_ome(tmp_path / "inputs" / "labels.ome.tif", labels)
    monkeypatch.chdir(tmp_path)
    for where, extra in (("local", ["--jobs", "1"]), ("dask", ["--scheduler", address])):
        assert main(["measure", "inputs/labels.ome.tif", "-o", f"{where}.tsv", *extra]) == 0
    table = pd.read_csv("dask.tsv", sep="\t")
    pd.testing.assert_frame_equal(table, pd.read_csv("local.tsv", sep="\t"))
    assert list(table["label"]) == list(np.unique(labels)[1:]) and len(table) == 5


def test_stitch_relative_tiles_on_cluster_equals_local(cluster, monkeypatch, tmp_path):
    """stitch reads the tiles in box tasks: tiles named relative to our folder reach workers
    running in another, and the mosaic equals the local run's."""
    from test_stitch import cut_tiles, write_tiles
    from skimage import color, data

    address, client = cluster
    tiles, _ = cut_tiles(color.rgb2gray(data.astronaut()) * 255, 2, 2, 96, 0.2, jitter=4, seed=5)
    monkeypatch.chdir(tmp_path)
    paths = write_tiles("tiles", tiles)
    before = finished_tasks(client)
    for where, extra in (("local", ["--jobs", "1"]), ("dask", ["--scheduler", address])):
        assert main(["stitch", *paths, "--grid", "2x2", "--overlap", "0.2", "-o",
                     f"{where}.tif", "--positions", f"{where}.tsv", *extra]) == 0
    after = finished_tasks(client)
    mosaic = tifffile.imread("local.tif")
    np.testing.assert_array_equal(tifffile.imread("dask.tif"), mosaic)
    assert open("dask.tsv").read() == open("local.tsv").read()
    assert mosaic.shape[-2:] > (150, 150) and mosaic.std() > 10
    assert sum(after.values()) > sum(before.values())


def test_a_file_the_workers_cannot_see_is_one_line(cluster):
    """A worker's FileNotFoundError names the path and what the workers need."""
    from neurostation.chunks import pool
    from neurostation.errors import UserError

    pool.use_scheduler(cluster[0])
    try:
        with pytest.raises(UserError, match=r"^a Dask worker cannot find /no/such/file: the "
                           "workers must see the same files at the same paths as this machine$"):
            list(pool.run_tasks(open, ["/no/such/file"]))
    finally:
        pool.use_scheduler(None)
