"""Per-label moments accumulated box by box and merged (Chan et al.'s parallel formulas):
voxel count, mean position, central second moments, bounding box and, with an intensity
image, mean, central second moment, minimum and maximum of the values. Merging is exact up
to float rounding, so the result equals the moments of the whole volume in memory."""

from dataclasses import dataclass

import numpy as np

from .grouping import group_sums, sum_by_key

# The second-moment components kept: xx, yy, zz, xy, xz, yz (axis numbers of x, y, z).
PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


@dataclass
class Moments:
    """One row per label (sorted): `mean` (n, 3) and `m2` (n, 6, sums of products of the
    deviations from the mean, PAIRS order) in voxel units; `lo`/`hi` the first and last voxel;
    `values` None or a dict mean, m2, min, max of the intensity per label."""

    label: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    values: dict = None

    def __len__(self):
        return len(self.label)


def _merge_rows(keys, count, mean, m2, lo, hi, values):
    """Moments of rows grouped by label; `m2` / `values['m2']` None mean zero (single voxels)."""
    label, inverse, sums = sum_by_key(keys, np.column_stack([count, count[:, None] * mean]))
    total = sums[:, 0]
    centre = sums[:, 1:] / total[:, None]
    dev = mean - centre[inverse]
    products = np.column_stack([count * dev[:, i] * dev[:, j] for i, j in PAIRS])
    if m2 is not None:
        products += m2
    merged_m2 = group_sums(inverse, len(label), products)
    first = np.full((len(label), 3), np.iinfo(np.int64).max, np.int64)
    last = np.full((len(label), 3), np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, inverse, lo)
    np.maximum.at(last, inverse, hi)
    merged_values = None if values is None else _merge_values(inverse, count, total, values)
    return Moments(label, total.astype(np.int64), centre, merged_m2, first, last, merged_values)


def _merge_values(inverse, count, total, values):
    """Intensity mean, central second moment, min and max per group (see _merge_rows)."""
    groups = len(total)
    mean = group_sums(inverse, groups, (count * values["mean"])[:, None])[:, 0] / total
    dev = values["mean"] - mean[inverse]
    m2 = count * dev * dev + (0 if values["m2"] is None else values["m2"])
    low, high = np.full(groups, np.inf), np.full(groups, -np.inf)
    np.minimum.at(low, inverse, values["min"])
    np.maximum.at(high, inverse, values["max"])
    return {"mean": mean, "m2": group_sums(inverse, groups, m2[:, None])[:, 0],
            "min": low, "max": high}


def box_moments(labels, origin, values=None):
    """Moments of one box: `labels` an (x, y, z) integer array whose first voxel lies at
    `origin` (x, y, z) of the volume, `values` the intensities of the same box or None.
    The foreground voxels are taken in memory order and sorted by label once; every per-label
    sum, minimum and maximum is then a reduction over a run of that order."""
    flip = abs(labels.strides[0]) < abs(labels.strides[-1])  # x fastest: walk it as (z, y, x)
    view = labels.T if flip else labels
    inside = view != 0
    keys = view[inside]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1  # where each label's run begins
    starts = np.concatenate([[0], starts]) if len(keys) else starts
    count = np.diff(np.append(starts, len(keys)))
    local = np.column_stack(np.nonzero(inside)[::-1] if flip else np.nonzero(inside))[order]
    lo, hi, mean, m2 = _runs(local, starts, count)
    data = None
    if values is not None:
        v = (values.T if flip else values)[inside][order].astype(np.float64)
        low, high, centre, spread = _runs(v[:, None], starts, count)
        data = {"mean": centre[:, 0], "m2": spread[:, 0], "min": low[:, 0], "max": high[:, 0]}
    at = np.asarray(origin, np.int64)
    return Moments(keys[starts], count.astype(np.int64), mean + at, m2,
                   lo + at, hi + at, data)


def _runs(rows, starts, count):
    """Minimum, maximum, mean and central second moments (PAIRS of the columns, or the one
    column's) of `rows` (n, k) over the runs beginning at `starts`."""
    if not len(starts):
        k = rows.shape[1]
        return (np.zeros((0, k), rows.dtype),) * 2 + (np.zeros((0, k)), np.zeros((0, 6)))
    mean = np.add.reduceat(rows, starts, axis=0) / count[:, None]
    dev = rows - np.repeat(mean, count, axis=0)
    pairs = PAIRS if rows.shape[1] == 3 else ((0, 0),)
    m2 = np.column_stack([np.add.reduceat(dev[:, i] * dev[:, j], starts) for i, j in pairs])
    return (np.minimum.reduceat(rows, starts, axis=0), np.maximum.reduceat(rows, starts, axis=0),
            mean, m2)


def merge_moments(parts):
    """One Moments from several (boxes of one volume, or earlier merges)."""
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    values = None
    if parts[0].values is not None:
        values = {k: np.concatenate([p.values[k] for p in parts]) for k in ("mean", "m2", "min", "max")}
    return _merge_rows(cat("label"), cat("count").astype(np.float64), cat("mean"), cat("m2"),
                       cat("lo"), cat("hi"), values)
