"""`neurostation compare`: on a prediction made from a ground truth by relabelling, merging,
shifting, eroding, dropping and adding objects, read in many small boxes, the overlaps equal
scikit-image's contingency_table, the object matching equals StarDist's definition (optimal
assignment of the IoU >= threshold pairs, scipy linear_sum_assignment) and Dice / IoU equal
numpy on the whole arrays; the known test images give their exact numbers; empty ground truth
gives n/a ratios; bad input stops with one line and no output."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from label_synth import assert_refused, partition, small_boxes, write_ome  # noqa: F401
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.metrics import contingency_table
from skimage.segmentation import relabel_sequential

from neurostation.cli import main

SHAPE = (13, 23, 19)  # z, y, x


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Ground truth: 45 objects; prediction: labels permuted, two objects merged into one,
    some shifted by a voxel, eroded or dropped, plus false positives in the background."""
    folder = tmp_path_factory.mktemp("compare")
    truth = partition(SHAPE, 45, seed=4, holes=0.0)
    truth[ndimage.binary_erosion(truth > 0, iterations=1) == 0] = 0  # gaps between objects
    truth = truth * (truth % 4 != 0)  # some background space
    rng = np.random.default_rng(5)
    ids = np.unique(truth[truth > 0])
    new = dict(zip(ids.tolist(), rng.permutation(len(ids)) * 7 + 100))
    pred = np.zeros_like(truth)
    for i, label in enumerate(ids.tolist()):
        mask = truth == label
        kind = i % 5
        if kind == 1:
            mask = np.roll(mask, 1, axis=2)
        elif kind == 2:
            mask = ndimage.binary_erosion(mask)
        elif kind == 3 and i % 3 == 0:
            continue  # missed
        pred[mask & (pred == 0)] = new[label]
    pred[truth == ids[7]] = new[ids[8]]  # ids 7 and 8 merged
    pred[(truth == 0) & (rng.uniform(size=SHAPE) < 0.01)] = 5000  # scattered false positive
    pred[0:2, 0:3, 0:3] = np.where(truth[0:2, 0:3, 0:3] == 0, 5001, pred[0:2, 0:3, 0:3])
    return (write_ome(folder / "pred.ome.tif", pred), write_ome(folder / "truth.ome.tif", truth),
            pred, truth)


def stardist_matching(truth, pred, thresh):
    """StarDist's `matching` (stardist.matching, BSD-3) in memory: the IoU matrix from the
    contingency table, an optimal assignment preferring pairs above the threshold."""
    t, _, t_labels = relabel_sequential(truth)
    p, _, p_labels = relabel_sequential(pred)
    overlap = contingency_table(t, p).toarray()
    iou = overlap / (overlap.sum(1, keepdims=True) + overlap.sum(0, keepdims=True) - overlap)
    scores = iou[1:, 1:]
    n_true, n_pred = scores.shape
    n_matched = min(n_true, n_pred)
    costs = -(scores >= thresh).astype(float) - scores / (2 * n_matched)
    ti, pi = linear_sum_assignment(costs)
    ok = scores[ti, pi] >= thresh
    tp = int(ok.sum())
    fp, fn = n_pred - tp, n_true - tp
    pairs = {(int(t_labels[a + 1]), int(p_labels[b + 1])): scores[a, b]
             for a, b in zip(ti[ok], pi[ok])}
    return {"true_positives": tp, "false_positives": fp, "false_negatives": fn,
            "precision": tp / (tp + fp), "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "mean_matched_iou": np.mean(list(pairs.values())),
            "panoptic_quality": sum(pairs.values()) / (tp + fp / 2 + fn / 2)}, pairs


@pytest.mark.parametrize("thresh, jobs", [(0.5, 1), (0.7, 2), (1.0, 1)])
def test_equals_reference(pair, small_boxes, tmp_path, thresh, jobs):  # noqa: F811
    pred_path, truth_path, pred, truth = pair
    out, matches = tmp_path / "metrics.tsv", tmp_path / "matches.tsv"
    assert main(["compare", pred_path, truth_path, "-o", str(out), "--matches", str(matches),
                 "--iou-threshold", str(thresh), "--jobs", str(jobs)]) == 0
    row = pd.read_csv(out, sep="\t").iloc[0]
    expected, pairs = stardist_matching(truth, pred, thresh)
    assert 0 < expected["true_positives"] < len(np.unique(truth)) - 1
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-10), key
    n_truth, n_pred = len(np.unique(truth)) - 1, len(np.unique(pred)) - 1
    assert (row.true_objects, row.predicted_objects) == (n_truth, n_pred)
    assert row.count_error == n_pred - n_truth
    assert row.relative_count_error == pytest.approx((n_pred - n_truth) / n_truth)
    inter = np.count_nonzero((pred > 0) & (truth > 0))
    total = np.count_nonzero(pred) + np.count_nonzero(truth)
    assert row.dice == pytest.approx(2 * inter / total, rel=1e-12)
    assert row.iou == pytest.approx(inter / (total - inter), rel=1e-12)
    table = pd.read_csv(matches, sep="\t")
    got = table[table.status == "matched"]
    assert {(r.true_label, r.predicted_label): r.iou for r in got.itertuples()} == pytest.approx(pairs)
    assert sorted(table[table.status != "false_positive"].true_label) == sorted(
        np.unique(truth[truth > 0]))
    assert (table.status == "false_positive").sum() == expected["false_positives"]
    for r in table.sample(20, random_state=0).itertuples():  # sizes, overlaps and IoUs
        t = (truth == r.true_label) & (r.true_label != 0)  # label 0: no partner
        p = (pred == r.predicted_label) & (r.predicted_label != 0)
        assert (r.true_voxels, r.predicted_voxels) == (t.sum(), p.sum())
        assert r.overlap_voxels == (t & p).sum()
        if r.true_label and r.predicted_label:
            assert r.iou == pytest.approx((t & p).sum() / (t | p).sum(), rel=1e-10)


def test_known_objects(data, cli, tmp_path):
    """compare_pred against objects_labels (see scripts/make_test_data.py)."""
    out, matches = tmp_path / "metrics.tsv", tmp_path / "matches.tsv"
    result = cli("compare", data("compare_pred.ome.tif"), data("objects_labels.ome.tif"),
                 "-o", out, "--matches", matches)
    assert result.returncode == 0, result.stderr
    assert "4 true, 4 predicted objects; at IoU >= 0.5: 3 matched, precision 0.75" in result.stdout
    row = pd.read_csv(out, sep="\t").iloc[0].to_dict()
    assert row == {
        "prediction": "compare_pred.ome.tif", "truth": "objects_labels.ome.tif",
        "iou_threshold": 0.5, "true_objects": 4, "predicted_objects": 4, "true_positives": 3,
        "false_positives": 1, "false_negatives": 1, "precision": 0.75, "recall": 0.75,
        "f1": 0.75, "mean_matched_iou": pytest.approx(2.25 / 3),
        "panoptic_quality": pytest.approx(2.25 / 4), "count_error": 0,
        "relative_count_error": 0.0, "dice": pytest.approx(288 / 352),
        "iou": pytest.approx(144 / 208), "true_voxels": 198, "predicted_voxels": 154,
        "overlap_voxels": 144}
    assert pd.read_csv(matches, sep="\t").values.tolist() == [
        [1, 10, 24, 24, 24, 1.0, "matched"], [2, 11, 18, 18, 12, 0.5, "matched"],
        [3, 12, 144, 108, 108, 0.75, "matched"], [7, 0, 12, 0, 0, 0.0, "missed"],
        [0, 20, 0, 4, 0, 0.0, "false_positive"]]
    result = cli("compare", data("compare_pred.ome.tif"), data("objects_labels.ome.tif"),
                 "-o", out, "--iou-threshold", "0.6")
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(out, sep="\t").iloc[0]
    assert (row.true_positives, row.false_positives, row.false_negatives) == (2, 2, 2)


def test_per_label(tmp_path):
    """Class images: label L against label L, as numpy on the whole arrays."""
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, (6, 9, 11)).astype(np.uint8)
    pred = np.where(rng.uniform(size=truth.shape) < 0.3, rng.integers(0, 5, truth.shape), truth)
    paths = [write_ome(tmp_path / f"{n}.ome.tif", a.astype(np.uint8))
             for n, a in (("pred", pred), ("truth", truth))]
    out, labels = tmp_path / "metrics.tsv", tmp_path / "labels.tsv"
    assert main(["compare", *paths, "-o", str(out), "--per-label", str(labels)]) == 0
    table = pd.read_csv(labels, sep="\t")
    assert list(table["label"]) == [1, 2, 3, 4]
    for r in table.itertuples():
        p, t = pred == r.label, truth == r.label
        assert (r.true_voxels, r.predicted_voxels, r.overlap_voxels) == (t.sum(), p.sum(), (p & t).sum())
        assert r.dice == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()), rel=1e-12)
        assert r.iou == pytest.approx((p & t).sum() / (p | t).sum(), rel=1e-12)


def test_empty_ground_truth(data, cli, tmp_path):
    """No true object: every prediction is a false positive; recall and the relative count
    error are n/a; both empty: every ratio n/a."""
    out = tmp_path / "metrics.tsv"
    result = cli("compare", data("objects_labels.ome.tif"), data("objects_empty.ome.tif"), "-o", out)
    assert result.returncode == 0, result.stderr
    assert "has no object" in result.stdout
    line = out.read_text().splitlines()[1].split("\t")
    assert line[2:] == ["0.5", "0", "4", "0", "4", "0", "0", "n/a", "0", "n/a", "0", "4",
                        "n/a", "0", "0", "0", "198", "0"]
    result = cli("compare", data("objects_empty.ome.tif"), data("objects_empty.ome.tif"), "-o", out)
    assert result.returncode == 0, result.stderr
    line = out.read_text().splitlines()[1].split("\t")
    assert line[8:17] == ["n/a"] * 5 + ["0", "n/a", "n/a", "n/a"]


@pytest.mark.parametrize("inputs_, message", [
    (["@objects_labels.ome.tif", "@stack.ome.tif"],
     "objects_labels.ome.tif is 24x20x6 voxels but the ground truth stack.ome.tif is 20x16x4"),
    (["@objects_float.ome.tif", "@objects_labels.ome.tif"],
     "objects_float.ome.tif holds float32 values; a label volume holds integers"),
    (["@compare_pred.ome.tif", "@objects_labels.ome.tif", "--iou-threshold", "0.3"],
     "--iou-threshold must be between 0.5 and 1"),
    (["@compare_pred.ome.tif", "@objects_labels.ome.tif", "--iou-threshold", "1.5"],
     "--iou-threshold must be between 0.5 and 1"),
    (["@compare_pred.ome.tif"], "the following arguments are required: TRUTH"),
])
def test_bad_input(data, cli, tmp_path, inputs_, message):
    out, matches = tmp_path / "metrics.tsv", tmp_path / "matches.tsv"
    args = [data(a[1:]) if a.startswith("@") else a for a in inputs_]
    result = cli("compare", *args, "-o", out, "--matches", matches)
    assert_refused(result, message, tmp_path)


def test_labels_above_32_bits(data, tmp_path):
    """uint64 labels beyond 2**32 (no packing of the pair into one number) give the same
    numbers as the known uint16 images."""
    pred = tifffile.imread(data("compare_pred.ome.tif")).astype(np.uint64)
    pred[pred > 0] += np.uint64(1 << 40)
    big = str(tmp_path / "big.tif")  # OME-TIFF has no uint64: a plain TIFF (no voxel size)
    tifffile.imwrite(big, pred, photometric="minisblack", metadata={"axes": "ZYX"})
    out = tmp_path / "metrics.tsv"
    assert main(["compare", big, data("objects_labels.ome.tif"), "-o", str(out)]) == 0
    row = pd.read_csv(out, sep="\t").iloc[0]
    assert (row.true_positives, row.false_positives, row.false_negatives) == (3, 1, 1)
    assert (row.overlap_voxels, row.dice) == (144, pytest.approx(288 / 352))
