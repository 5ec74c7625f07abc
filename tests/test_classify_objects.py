"""`neurostation classify-objects`: objects classified from the `measure` table by a random
forest equal to scikit-learn's in memory, excluded and other-class objects removed from the
label volume (box by box) and the table; saved models reapplied; bad input refused."""

import os

import numpy as np
import pandas as pd
import pytest
import skops.io
import tifffile
from sklearn.ensemble import RandomForestClassifier
from test_classify import refused as refused_run
from test_ingest import read_with_tensorstore
from test_qc import write_ome

from neurostation.analysis.objects import inputs
from neurostation.cli import main
from neurostation.processing import filter as filter_image

VOXEL_UM = (0.5, 0.5, 1.0)
FEATURES = ["voxel_count", "volume_um3", "equivalent_diameter_um", "axis_major_um",
            "axis_middle_um", "axis_minor_um", "intensity_mean", "intensity_min",
            "intensity_max", "intensity_std", "intensity_integrated"]


@pytest.fixture
def small_boxes(monkeypatch):
    monkeypatch.setattr(inputs, "BOX_VOXELS", 16 * 12 * 4)
    monkeypatch.setattr(filter_image, "BOX_BUDGET", 48 * 40 * 2 * 3)


def cells(seed=0, shape=(16, 40, 48)):
    """(labels z, y, x uint16, intensity, {label: 'large'/'small'}): 24 balls on a grid, the
    larger ones dimmer, sizes and brightness jittered so that they overlap a little."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint16)
    intensity = rng.normal(20, 3, shape)
    truth = {}
    centres = [(z, y, x) for z in (4, 11) for y in (6, 19, 32) for x in (6, 18, 30, 42)]
    for label, (cz, cy, cx) in enumerate(centres, 1):
        large = rng.random() < 0.5
        r = rng.uniform(3.3, 4.5) if large else rng.uniform(1.8, 3.1)
        ball = (2 * (zz - cz)) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        labels[ball] = label
        intensity[ball] += rng.normal(60 if large else 100, 10)
        truth[label] = "large" if large else "small"
    return labels, intensity.astype(np.float32), truth


@pytest.fixture
def measured(tmp_path):
    labels, intensity, truth = cells()
    paths = {"labels": write_ome(tmp_path / "cells.ome.tif", labels, VOXEL_UM),
             "intensity": write_ome(tmp_path / "dapi.ome.tif", intensity, VOXEL_UM),
             "table": str(tmp_path / "objects.tsv")}
    assert main(["measure", paths["labels"], "--intensity", paths["intensity"],
                 "-o", paths["table"]]) == 0
    training = {i: truth[i] for c in ("large", "small")
                for i in [i for i in sorted(truth) if truth[i] == c][:3]}
    paths["training"] = str(tmp_path / "training.tsv")
    pd.DataFrame({"label": list(training), "class": list(training.values())}).to_csv(
        paths["training"], sep="\t", index=False)
    paths["exclude"] = str(tmp_path / "bad_cells.txt")
    with open(paths["exclude"], "w") as f:
        f.write("label\n4\n17\n\n")
    return paths, labels, truth, training


def run(*args):
    return main(["classify-objects", *map(str, args)])


def reference_classes(table_path, training, seed, trees=100):
    """scikit-learn's forest on the same rows and columns, in memory: {label: class}."""
    table = pd.read_csv(table_path, sep="\t").set_index("label")
    names = sorted(set(training.values()))
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed)
    forest.fit(table.loc[list(training), FEATURES].to_numpy(),
               [names.index(c) for c in training.values()])
    predicted = forest.predict(table[FEATURES].to_numpy())
    return {**{label: names[p] for label, p in zip(table.index, predicted)}, **training}


def test_train_exclude_keep_one_class(tmp_path, measured, small_boxes):
    paths, labels, truth, training = measured
    out, table_out, model = tmp_path / "large.ome.tif", tmp_path / "large.tsv", tmp_path / "m.skops"
    assert run(paths["labels"], "--table", paths["table"], "--training", paths["training"],
               "--exclude", paths["exclude"], "--keep-class", "large", "-o", out,
               "--table-out", table_out, "--save-model", model, "--seed", "3") == 0
    expected = reference_classes(paths["table"], training, 3)
    assert sum(expected[i] == truth[i] for i in truth) >= 22  # the forest finds the sizes
    kept = sorted(i for i, c in expected.items() if c == "large" and i not in (4, 17))
    table = pd.read_csv(table_out, sep="\t")
    assert table["label"].tolist() == kept and set(table["class"]) == {"large"}
    assert table.columns[-2:].tolist() == ["class", "class_probability"]
    assert table.loc[table["label"].isin(list(training)), "class_probability"].eq(1).all()
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX"
        filtered = tif.asarray()
    np.testing.assert_array_equal(filtered, np.where(np.isin(labels, kept), labels, 0))
    assert filtered.dtype == np.uint16
    # the saved model on the same table: the same classes (training objects aside)
    again = tmp_path / "again.tsv"
    assert run(paths["labels"], "--table", paths["table"], "--apply", model, "-o",
               tmp_path / "all.ome.tif", "--table-out", again) == 0
    applied = pd.read_csv(again, sep="\t").set_index("label")["class"].to_dict()
    assert len(applied) == 24
    assert all(applied[i] == expected[i] for i in applied if i not in training)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "all.ome.tif"), labels)


def test_exclusion_only_to_precomputed(tmp_path, measured, small_boxes):
    paths, labels, _, _ = measured
    assert run(paths["labels"], "--table", paths["table"], "--exclude", paths["exclude"],
               "-o", tmp_path / "vol", "--table-out", tmp_path / "t.tsv", "--jobs", "2") == 0
    stored = read_with_tensorstore(tmp_path / "vol")[..., 0].transpose(2, 1, 0)
    np.testing.assert_array_equal(stored, np.where(np.isin(labels, [4, 17]), 0, labels))
    table = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    assert table["label"].tolist() == [i for i in range(1, 25) if i not in (4, 17)]
    assert "class" not in table.columns


def refused(capsys, *args):
    return refused_run(capsys, "classify-objects", *args)


def test_bad_input_is_refused(tmp_path, capsys, measured):
    paths, _, _, _ = measured
    common = [paths["labels"], "--table", paths["table"], "-o", tmp_path / "o.ome.tif",
              "--table-out", tmp_path / "o.tsv"]
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("3\n31\n99\n")
    assert refused(capsys, *common, "--exclude", unknown) == (
        "error: the exclusion list unknown.txt names 2 object(s) that are not in the object "
        "table: 31, 99")
    words = tmp_path / "words.txt"
    words.write_text("label\ncell seven\n")
    assert refused(capsys, *common, "--exclude", words) == (
        "error: the exclusion list words.txt has an object id that is not a whole number: "
        "'cell seven'")
    one = tmp_path / "one.tsv"
    one.write_text("label\tclass\n1\tlarge\n2\tlarge\n")
    assert refused(capsys, *common, "--training", one) == (
        "error: the training table one.tsv has only one class (large); training needs at least two")
    assert refused(capsys, *common, "--training", paths["training"], "--columns",
                   "volume_um3,roundness") == (
        "error: the object table objects.tsv lacks the feature column(s) roundness")
    evil = tmp_path / "evil.skops"
    skops.io.dump({"format": "neurostation-model-1", "model": os.system}, evil)
    assert refused(capsys, *common, "--apply", evil) == (
        "error: evil.skops is not safe to load: it holds types outside the allow-list "
        "(posix.system)")
    assert not (tmp_path / "o.ome.tif").exists() and not (tmp_path / "o.tsv").exists()


def test_model_needs_its_columns_and_kind(tmp_path, capsys, measured):
    paths, _, _, _ = measured
    model = tmp_path / "m.skops"
    assert run(paths["labels"], "--table", paths["table"], "--training", paths["training"],
               "--save-model", model, "-o", tmp_path / "a.ome.tif", "--table-out",
               tmp_path / "a.tsv", "--trees", "10") == 0
    table = pd.read_csv(paths["table"], sep="\t").drop(columns=["intensity_std"])
    short = tmp_path / "short.tsv"
    table.to_csv(short, sep="\t", index=False)
    common = [paths["labels"], "-o", tmp_path / "o.ome.tif", "--table-out", tmp_path / "o.tsv"]
    assert refused(capsys, *common, "--table", short, "--apply", model) == (
        "error: the object table short.tsv lacks the feature column(s) intensity_std")
    image = write_ome(tmp_path / "img.ome.tif", np.random.default_rng(0).random((4, 20, 20))
                      .astype(np.float32), VOXEL_UM)
    ann = np.zeros((4, 20, 20), np.uint8)
    ann[0, :2], ann[3, -2:] = 1, 2
    pixel = tmp_path / "pixel.skops"
    assert main(["classify", image, "--annotations", write_ome(tmp_path / "ann.ome.tif", ann,
                                                               VOXEL_UM),
                 "--save-model", str(pixel), "-o", str(tmp_path / "s.ome.tif"), "--trees", "2",
                 "--sigmas", "1"]) == 0
    assert refused(capsys, *common, "--table", paths["table"], "--apply", pixel) == (
        "error: pixel.skops is a model of kind 'pixel classifier'; this command takes "
        "'object classifier' models")


def test_several_samples_need_one_chosen(tmp_path, capsys, measured):
    paths, labels, _, _ = measured
    table = pd.read_csv(paths["table"], sep="\t")
    two = pd.concat([table, table.assign(sample="other.ome.tif")])
    both = tmp_path / "both.tsv"
    two.to_csv(both, sep="\t", index=False)
    common = [paths["labels"], "--table", both, "-o", tmp_path / "o.ome.tif", "--table-out",
              tmp_path / "o.tsv", "--exclude", paths["exclude"]]
    assert refused(capsys, *common).startswith(
        "error: the object table both.tsv holds 2 samples (cells.ome.tif, other.ome.tif...)")
    assert run(*common, "--sample", "other.ome.tif") == 0
    assert len(pd.read_csv(tmp_path / "o.tsv", sep="\t")) == 22
