"""Sums grouped by key, the merge step of every per-label accumulator."""

import numpy as np

# Pending rows that trigger a merge at the least (more when the total is larger).
FOLD_ROWS = 1 << 16


def sum_by_key(keys, columns):
    """(unique keys, inverse, sums) of `columns` (n, k) grouped by `keys` (n,) or rows of
    (n, m); sums are float64 (k columns), exact for integer counts below 2**53."""
    axis = 0 if keys.ndim > 1 else None
    unique, inverse = np.unique(keys, axis=axis, return_inverse=True)
    inverse = inverse.reshape(-1)
    return unique, inverse, group_sums(inverse, len(unique), columns)


def group_sums(inverse, groups, columns):
    """Sums of `columns` (n, k) over the rows of each group numbered by `inverse`."""
    return np.stack([np.bincount(inverse, weights=c, minlength=groups)
                     for c in np.asarray(columns, np.float64).T], axis=1)


class Batches:
    """Fold box results into one total now and then, not at every box: the cost of a merge
    grows with the labels seen, so merging only when the pending rows outnumber the total
    keeps the work near linear while memory stays bounded by a few times the total."""

    def __init__(self, merge, rows):
        self.merge, self.rows = merge, rows
        self.total, self.pending, self.pending_rows = None, [], 0

    def add(self, part):
        self.pending.append(part)
        self.pending_rows += self.rows(part)
        if self.pending_rows > max(FOLD_ROWS, self.rows(self.total) if self.total else 0):
            self._fold()

    def _fold(self):
        parts = ([self.total] if self.total is not None else []) + self.pending
        if parts:
            self.total = self.merge(parts)
        self.pending, self.pending_rows = [], 0

    def result(self):
        self._fold()
        return self.total
