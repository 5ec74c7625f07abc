"""Streaming statistics: value range and mean over blocks, in memory bounded by one block."""

import numpy as np


class RunningStats:
    """Accumulate min, max, mean and count over blocks of any shape."""

    def __init__(self):
        self.count = 0
        self.total = 0.0
        self.min = None
        self.max = None

    def add(self, block):
        block = np.asarray(block)
        if block.size == 0:
            return
        lo, hi = block.min(), block.max()
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.total += float(block.sum(dtype=np.float64))
        self.count += block.size

    def merge(self, other):
        """Add what another accumulator saw (e.g. one box's statistics from a worker process)."""
        if other.count:
            self.min = other.min if self.min is None else min(self.min, other.min)
            self.max = other.max if self.max is None else max(self.max, other.max)
            self.total += other.total
            self.count += other.count
        return self

    def as_dict(self):
        """min/max as plain Python numbers (ints stay ints), mean as float."""
        if not self.count:
            return {"min": None, "max": None, "mean": None}
        return {"min": self.min.item(), "max": self.max.item(), "mean": self.total / self.count}
