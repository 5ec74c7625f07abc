"""`neurostation count`: counts, labelled voxels and volumes equal numpy's np.unique on the
whole arrays, read in many small boxes (serial and with a process pool), with and without a
size filter; samples in natural order; the PNG shows one bar per sample of a height
proportional to its count; bad input stops with one line and no output."""

import numpy as np
import pandas as pd
import pytest
from label_synth import VOXEL_UM, assert_refused, partition, small_boxes, write_ome  # noqa: F401
from PIL import Image

from neurostation.analysis.objects.count_plot import BAR_COLOUR
from neurostation.cli import main

VOXEL = float(np.prod(VOXEL_UM))


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Three 19 x 23 x 13 partitions into 40, 12 and 25 objects (labels with gaps)."""
    folder = tmp_path_factory.mktemp("count")
    arrays = {name: partition((13, 23, 19), seeds, seed=seed)
              for name, seeds, seed in (("well_10", 40, 1), ("well_2", 12, 2), ("well_9", 25, 3))}
    return {name: (write_ome(folder / f"{name}.ome.tif", a), a) for name, a in arrays.items()}


def reference(labels, min_voxels=0):
    """(objects, labelled voxels) of the labels of at least `min_voxels` voxels, in memory."""
    values, counts = np.unique(labels[labels != 0], return_counts=True)
    kept = counts[counts >= min_voxels]
    return len(kept), int(kept.sum())


@pytest.mark.parametrize("jobs", [1, 2])
def test_counts_equal_numpy(samples, small_boxes, tmp_path, jobs):  # noqa: F811
    out, png = tmp_path / "counts.tsv", tmp_path / "counts.png"
    names = list(samples)
    assert main(["count", *(samples[n][0] for n in names), "--names", *names, "-o", str(out),
                 "--plot", str(png), "--jobs", str(jobs)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert list(table["sample"]) == ["well_2", "well_9", "well_10"]  # natural order
    for row in table.itertuples():
        labels = samples[row.sample][1]
        objects, voxels = reference(labels)
        assert objects > 10
        assert (row.objects, row.labelled_voxels) == (objects, voxels)
        assert row.labelled_volume_um3 == pytest.approx(voxels * VOXEL, rel=1e-12)
        assert row.labelled_fraction == pytest.approx(voxels / labels.size, rel=1e-12)
        sizes = np.unique(labels[labels != 0], return_counts=True)[1]
        assert row.median_object_volume_um3 == pytest.approx(np.median(sizes) * VOXEL)
    assert "smaller_objects_left_out" not in table
    check_bars(png, list(table["objects"]))


@pytest.mark.parametrize("min_size, min_voxels", [("100", 100), ("69.9um3", 100), ("35um3", 50)])
def test_min_size(samples, small_boxes, tmp_path, min_size, min_voxels):  # noqa: F811
    """A volume rounds up to whole voxels (69.9 µm³ / 0.7 µm³ = 99.86 -> 100 voxels), and a
    whole number of voxels stays that number (35 µm³ = 50 voxels, float rounding aside)."""
    out = tmp_path / "counts.tsv"
    path, labels = samples["well_10"]
    assert main(["count", path, "-o", str(out), "--min-size", min_size]) == 0
    row = pd.read_csv(out, sep="\t").iloc[0]
    objects, voxels = reference(labels, min_voxels)
    assert 0 < objects < reference(labels)[0]
    assert (row.objects, row.labelled_voxels) == (objects, voxels)
    assert row.smaller_objects_left_out == reference(labels)[0] - objects


def check_bars(png, counts):
    """One bar of BAR_COLOUR per count, left to right, heights proportional to the counts."""
    image = np.asarray(Image.open(png))
    assert image.shape == (900, 1200, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # text, bars, boxes, antialiasing
    colour = np.array([int(BAR_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    bar = (image == colour).all(axis=-1)
    columns = np.flatnonzero(bar.any(axis=0))
    runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    heights = [bar[:, run].sum(axis=0).max() for run in runs]
    assert len(heights) == len(counts)
    scale = max(heights) / max(counts)
    np.testing.assert_allclose(heights, np.array(counts) * scale, atol=1.5)


def test_known_objects_and_empty_sample(data, cli, tmp_path):
    """objects_labels: 24, 18, 144 and 12 voxels of 0.5 µm³; objects_labels_b: 144 and 12."""
    out, png = tmp_path / "counts.tsv", tmp_path / "counts.png"
    result = cli("count", data("objects_labels.ome.tif"), data("objects_labels_b.ome.tif"),
                 data("objects_empty.ome.tif"), "--names", "cell_10", "cell_2", "cell_3",
                 "-o", out, "--plot", png, "--min-size", "10um3")
    assert result.returncode == 0, result.stderr
    assert "cell_10: 2 objects of at least 20 voxels (2 smaller left out)" in result.stdout
    table = pd.read_csv(out, sep="\t")
    assert table.to_dict("list") == {
        "sample": ["cell_2", "cell_3", "cell_10"], "objects": [1, 0, 2],
        "labelled_voxels": [144, 0, 168], "labelled_volume_um3": [72.0, 0.0, 84.0],
        "labelled_fraction": [0.05, 0.0, pytest.approx(168 / 2880, rel=1e-11)],
        "median_object_volume_um3": [72.0, pytest.approx(np.nan, nan_ok=True), 42.0],
        "smaller_objects_left_out": [1, 0, 2]}
    check_bars(png, [1, 2])  # an empty sample has no bar
    result = cli("count", data("objects_labels.ome.tif"), "-o", out, "--unit", "nm")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out, sep="\t")["labelled_volume_nm3"].tolist() == [99e9]


def test_precomputed_labels(data, small_boxes, tmp_path):  # noqa: F811
    """labels_vol: segments 1, 2, 3 of 288 voxels of 0.25 x 0.25 x 1 µm, read chunk-wise."""
    out = tmp_path / "counts.tsv"
    assert main(["count", data("labels_vol"), "-o", str(out)]) == 0
    row = pd.read_csv(out, sep="\t").iloc[0]
    assert (row["sample"], row.objects, row.labelled_voxels) == ("labels_vol", 3, 864)
    assert row.labelled_volume_um3 == pytest.approx(864 * 0.0625)


@pytest.mark.parametrize("inputs_, message", [
    (["@objects_float.ome.tif"], "holds float32 values; a label volume holds integers"),
    (["@objects_labels.ome.tif", "@objects_labels_b.ome.tif", "--names", "a"], "--names gives 1"),
    (["@objects_labels.ome.tif", "--min-size", "-3"], "--min-size must be a positive number"),
    (["@objects_labels.ome.tif", "--min-size", "5um2"], "--min-size must be a positive number"),
    (["@stack_imagej.tif", "--voxel-size", "1,1"], "--voxel-size"),
])
def test_bad_input(data, cli, tmp_path, inputs_, message):
    out, png = tmp_path / "counts.tsv", tmp_path / "counts.png"
    args = [data(a[1:]) if a.startswith("@") else a for a in inputs_]
    result = cli("count", *args, "-o", out, "--plot", png)
    assert_refused(result, message, tmp_path)
