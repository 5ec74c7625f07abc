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
    `origin` (x, y, z) of the volume, `values` the intensities of the same box or None."""
    inside = labels != 0
    keys = labels[inside]
    position = np.column_stack(np.nonzero(inside)).astype(np.int64) + np.asarray(origin, np.int64)
    count = np.ones(len(keys))
    data = None
    if values is not None:
        v = values[inside].astype(np.float64)
        data = {"mean": v, "m2": None, "min": v, "max": v}
    return _merge_rows(keys, count, position.astype(np.float64), None, position, position, data)


def merge_moments(parts):
    """One Moments from several (boxes of one volume, or earlier merges)."""
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    values = None
    if parts[0].values is not None:
        values = {k: np.concatenate([p.values[k] for p in parts]) for k in ("mean", "m2", "min", "max")}
    return _merge_rows(cat("label"), cat("count").astype(np.float64), cat("mean"), cat("m2"),
                       cat("lo"), cat("hi"), values)
