"""`neurostation compare`: a label image against a ground-truth label image — voxel Dice and
IoU of the foreground (and per label value), object matching at an IoU threshold (true and
false positives, false negatives, precision, recall, F1) and the count error — from the
contingency table accumulated box by box (memory: a box plus one row per overlapping pair)."""

import shutil
import tempfile

import numpy as np
import pandas as pd

from ...chunks.pool import add_parallel_arguments, resolve_jobs
from ...errors import UserError
from ...io.outputs import staged
from ..fmri.tables import write_frame
from .inputs import open_labels, read_labels
from .overlaps import best_partners, match, overlaps
from .tally import box_tally, tally_volume


def add_parser(subparsers):
    p = subparsers.add_parser(
        "compare", help="compare a segmentation with a ground truth (Dice, IoU, object "
        "precision/recall/F1, count error)",
        description="Compare a label image with a ground-truth label image of the same shape "
        "(TIFF ZYX, OME-TIFF, NIfTI-1, precomputed folder, URL or JSON reference; 0 = "
        "background). Voxel level: Dice and IoU of the foreground (label > 0) and, with "
        "--per-label, of each label value (for class images). Object level: a predicted and a "
        "true object match when their IoU is at least --iou-threshold (0.5 to 1; each object "
        "matches once), giving true positives, false positives (unmatched predictions), false "
        "negatives (unmatched truths), precision, recall, F1, the mean IoU of the matches and "
        "the panoptic quality, as StarDist's `matching` defines them; count error = predicted - true objects. Ratios "
        "whose denominator is 0 (e.g. recall of an empty ground truth) are n/a. Read box by "
        "box: memory is one box plus one row per overlapping pair of objects.",
        epilog="example: neurostation compare predicted.ome.tif truth.ome.tif -o metrics.tsv "
        "--matches matches.tsv --iou-threshold 0.5",
    )
    p.add_argument("prediction", metavar="LABELS", help="the label image to assess")
    p.add_argument("truth", metavar="TRUTH", help="the ground-truth label image")
    p.add_argument("-o", "--output", required=True, help="the metrics table (TSV, one row)")
    p.add_argument("--matches", help="also write the object table (TSV): every true and "
                   "predicted object, its best partner, their IoU and whether they match")
    p.add_argument("--per-label", metavar="TSV", help="also write Dice and IoU of each label "
                   "value (label L of the prediction against label L of the truth)")
    p.add_argument("--iou-threshold", type=float, default=0.5, metavar="T",
                   help="IoU at which objects match, 0.5 to 1 (default 0.5)")
    p.add_argument("--name", help="name of the label image in the table (default: file name)")
    p.add_argument("--truth-name", help="name of the ground truth (default: file name)")
    add_parallel_arguments(p)
    p.set_defaults(func=run)
    return p


class _BoxPairs:
    """The (predicted, true) label pairs of one box's labelled voxels with their counts."""

    def __init__(self, pred, truth):
        self.pred, self.truth = pred, truth

    def __call__(self, box):
        p, t = read_labels(self.pred, box), read_labels(self.truth, box)
        labelled = (p != 0) | (t != 0)
        return box_tally(np.column_stack([p[labelled], t[labelled]]))


def ratio(a, b):
    """a / b, NaN (written n/a) when b is 0."""
    return a / b if b else np.nan


def metrics_row(o, chosen, threshold, names):
    """The one-row metrics table."""
    tp = len(chosen)
    n_pred, n_truth = len(o.pred), len(o.truth)
    fp, fn = n_pred - tp, n_truth - tp
    matched_iou = float(o.pair_iou[chosen].sum())
    inter = int(o.pair_overlap.sum())
    vp, vt = int(o.pred_size.sum()), int(o.truth_size.sum())
    return pd.DataFrame([{
        "prediction": names[0], "truth": names[1], "iou_threshold": threshold,
        "true_objects": n_truth, "predicted_objects": n_pred,
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "mean_matched_iou": ratio(matched_iou, tp),
        "panoptic_quality": ratio(matched_iou, tp + fp / 2 + fn / 2),
        "count_error": n_pred - n_truth, "relative_count_error": ratio(n_pred - n_truth, n_truth),
        "dice": ratio(2 * inter, vp + vt), "iou": ratio(inter, vp + vt - inter),
        "true_voxels": vt, "predicted_voxels": vp, "overlap_voxels": inter}])


def match_table(o, chosen):
    """One row per true object (matched or missed), then per unmatched predicted object."""
    by_truth = dict(zip(o.pair_truth[chosen].tolist(), chosen.tolist()))
    matched_pred = set(o.pair_pred[chosen].tolist())
    best_pred, best_pred_iou = best_partners(o.truth, o.pair_truth, o.pair_pred, o.pair_iou)
    best_truth, best_truth_iou = best_partners(o.pred, o.pair_pred, o.pair_truth, o.pair_iou)
    pred_size = dict(zip(o.pred.tolist(), o.pred_size.tolist()))
    truth_size = dict(zip(o.truth.tolist(), o.truth_size.tolist()))
    overlap = {(a, b): n for a, b, n in zip(o.pair_pred.tolist(), o.pair_truth.tolist(),
                                             o.pair_overlap.tolist())}
    rows = []
    for t, size, p, iou in zip(o.truth.tolist(), o.truth_size.tolist(), best_pred.tolist(),
                               best_pred_iou.tolist()):
        if t in by_truth:
            p, iou = int(o.pair_pred[by_truth[t]]), float(o.pair_iou[by_truth[t]])
        rows.append((t, p, size, pred_size.get(p, 0), overlap.get((p, t), 0), iou,
                     "matched" if t in by_truth else "missed"))
    for p, size, t, iou in zip(o.pred.tolist(), o.pred_size.tolist(), best_truth.tolist(),
                               best_truth_iou.tolist()):
        if p not in matched_pred:
            rows.append((t, p, truth_size.get(t, 0), size, overlap.get((p, t), 0), iou,
                         "false_positive"))
    return pd.DataFrame(rows, columns=["true_label", "predicted_label", "true_voxels",
                                       "predicted_voxels", "overlap_voxels", "iou", "status"])


def label_table(table):
    """Dice and IoU of each label value L: prediction == L against truth == L."""
    p, t, n = table.keys[:, 0], table.keys[:, 1], table.counts
    labels = np.union1d(p[p != 0], t[t != 0])
    count = lambda keys, where: np.bincount(np.searchsorted(labels, keys[where]),  # noqa: E731
                                            n[where], len(labels)).astype(np.int64)
    vp, vt, inter = count(p, p != 0), count(t, t != 0), count(p, (p == t) & (p != 0))
    return pd.DataFrame({"label": labels, "true_voxels": vt, "predicted_voxels": vp,
                         "overlap_voxels": inter, "dice": 2 * inter / (vp + vt),
                         "iou": inter / (vp + vt - inter)})


def open_pair(args, workdir):
    """The prediction and the truth as box sources of the same shape."""
    pred = open_labels(args.prediction, workdir, args.name)
    truth = open_labels(args.truth, workdir, args.truth_name)
    if pred.shape != truth.shape:
        shape = lambda s: "x".join(map(str, s.shape))  # noqa: E731
        raise UserError(f"{pred.name} is {shape(pred)} voxels but the ground truth {truth.name} "
                        f"is {shape(truth)} (x, y, z): compare images of the same shape")
    return pred, truth


def run(args):
    if not 0.5 <= args.iou_threshold <= 1:
        raise UserError(f"--iou-threshold must be between 0.5 and 1 (objects match one to one "
                        f"only from 0.5 up), got {args.iou_threshold:g}")
    jobs = resolve_jobs(args.jobs)
    workdir = tempfile.mkdtemp(prefix="neurostation-compare-")
    try:
        pred, truth = open_pair(args, workdir)
        table = tally_volume(_BoxPairs(pred, truth), pred, jobs,
                             f"comparing {pred.name} with {truth.name}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    o = overlaps(table)
    chosen = match(o, args.iou_threshold)
    metrics = metrics_row(o, chosen, args.iou_threshold, (pred.name, truth.name))
    targets = {"metrics": (args.output, ".tsv"), "matches": (args.matches, ".tsv"),
               "labels": (args.per_label, ".tsv")}
    with staged(targets) as temps:
        write_frame(temps["metrics"], metrics)
        if args.matches:
            write_frame(temps["matches"], match_table(o, chosen))
        if args.per_label:
            write_frame(temps["labels"], label_table(table))
    m = metrics.iloc[0]
    if not len(o.truth):
        print(f"note: the ground truth {truth.name} has no object: recall, relative count error "
              "and the F1 of an empty prediction are n/a")
    print(f"{pred.name} vs {truth.name}: {m.true_objects} true, {m.predicted_objects} predicted "
          f"objects; at IoU >= {args.iou_threshold:g}: {m.true_positives} matched, precision "
          f"{m.precision:.4g}, recall {m.recall:.4g}, F1 {m.f1:.4g}; Dice {m.dice:.4g}, IoU "
          f"{m.iou:.4g}; wrote {args.output}")
