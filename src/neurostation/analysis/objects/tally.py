"""Voxel counts per key (a label, or a pair of labels of two images) accumulated box by box:
each box gives its distinct keys with their counts, the box tallies are summed by key, so the
result equals np.unique(..., return_counts=True) on the whole volume while memory holds a box
plus one row per key."""

from dataclasses import dataclass

import fastremap
import numpy as np

from ...chunks.pool import run_tasks
from .grouping import Batches, sum_by_key
from .inputs import label_boxes


@dataclass
class Tally:
    """Sorted distinct `keys` ((n,) labels or (n, 2) label pairs, uint64) and their voxel
    `counts` (int64)."""

    keys: np.ndarray
    counts: np.ndarray

    def __len__(self):
        return len(self.keys)


def box_tally(keys):
    """The Tally of the keys of one box ((n,) or (n, 2) integers); fastremap.unique (the
    same result as np.unique) is several times faster on label data."""
    packed, unpack = _packed(keys.astype(np.uint64))
    if packed.ndim > 1:
        unique, counts = np.unique(packed, axis=0, return_counts=True)
    else:
        unique, counts = fastremap.unique(packed, return_counts=True)
    return Tally(unpack(unique), np.asarray(counts, np.int64))


def merge_tallies(parts):
    """One Tally from several: counts of the same key added."""
    packed, unpack = _packed(np.concatenate([p.keys for p in parts]))
    keys, _, sums = sum_by_key(packed, np.concatenate([p.counts for p in parts])[:, None])
    return Tally(unpack(keys), sums[:, 0].astype(np.int64))


def _packed(keys):
    """(keys, the inverse function): pairs of labels below 2**32 packed into one uint64 each
    (pair order kept), since a 1-D np.unique is several times faster than np.unique(axis=0)."""
    if keys.ndim == 1 or (keys.size and keys.max() >= 1 << 32):
        return keys, lambda k: k
    high = np.uint64(32)
    return keys[:, 0] << high | keys[:, 1], lambda k: np.column_stack(
        [k >> high, k & np.uint64(0xFFFFFFFF)])


def tally_volume(task, source, jobs, desc):
    """The merged Tally of `task(box)` over the boxes tiling `source`."""
    batches = Batches(merge_tallies, len)
    for part in run_tasks(task, label_boxes(source), jobs, desc=desc):
        batches.add(part)
    return batches.result()
