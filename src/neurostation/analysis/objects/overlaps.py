"""Object overlaps of a predicted and a ground-truth label image from their contingency table
(voxels per (predicted, true) label pair, 0 = background): object sizes, the IoU of every
overlapping pair, and the one-to-one matching of objects at an IoU threshold >= 0.5."""

from dataclasses import dataclass

import numpy as np

from .grouping import sum_by_key


@dataclass
class Overlaps:
    """Sorted labels and voxel counts of each image (`pred`, `pred_size`, `truth`,
    `truth_size`) and every pair of objects that share voxels: labels, overlap voxels, IoU."""

    pred: np.ndarray
    pred_size: np.ndarray
    truth: np.ndarray
    truth_size: np.ndarray
    pair_pred: np.ndarray
    pair_truth: np.ndarray
    pair_overlap: np.ndarray
    pair_iou: np.ndarray


def sizes(labels, counts):
    """(sorted labels > 0, voxels of each) from the pair column `labels`."""
    inside = labels != 0
    keys, _, sums = sum_by_key(labels[inside], counts[inside, None])
    return keys, sums[:, 0].astype(np.int64)


def overlaps(table):
    """Overlaps from a contingency Tally (keys (n, 2): predicted, true label; counts)."""
    p, t, n = table.keys[:, 0], table.keys[:, 1], table.counts
    pred, pred_size = sizes(p, n)
    truth, truth_size = sizes(t, n)
    both = (p != 0) & (t != 0)
    p, t, n = p[both], t[both], n[both]
    union = pred_size[np.searchsorted(pred, p)] + truth_size[np.searchsorted(truth, t)] - n
    return Overlaps(pred, pred_size, truth, truth_size, p, t, n, n / union)


def match(o, threshold):
    """Indices of the matched pairs: IoU >= threshold, each object in one pair at most.

    Above 0.5 a pair's objects share more than half their union, so neither has another
    candidate and every candidate is a match. At exactly 0.5 one object can tie with two
    halves of itself (each wholly inside it, touching nothing else): the pairs are taken by
    decreasing IoU, then increasing labels, which gives a largest matching (as the optimal
    assignment of StarDist's `matching` does) since such ties share only the one object."""
    candidates = np.flatnonzero(o.pair_iou >= threshold)
    order = candidates[np.lexsort((o.pair_truth[candidates], o.pair_pred[candidates],
                                   -o.pair_iou[candidates]))]
    used_pred, used_truth, chosen = set(), set(), []
    for i in order.tolist():
        a, b = int(o.pair_pred[i]), int(o.pair_truth[i])
        if a not in used_pred and b not in used_truth:
            used_pred.add(a)
            used_truth.add(b)
            chosen.append(i)
    return np.array(sorted(chosen, key=lambda i: (o.pair_truth[i], o.pair_pred[i])), np.int64)


def best_partners(labels, own, other, iou):
    """For each of `labels`, the partner (in `other`) of its highest-IoU pair and that IoU
    (0 and 0.0 for an object that overlaps nothing); `own` names each pair's object."""
    order = np.lexsort((other, -iou, own))
    first_own, first = np.unique(own[order], return_index=True)
    partner, best = np.zeros(len(labels), np.uint64), np.zeros(len(labels))
    where = np.searchsorted(labels, first_own)
    partner[where] = other[order][first]
    best[where] = iou[order][first]
    return partner, best
