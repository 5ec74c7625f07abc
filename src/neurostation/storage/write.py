"""Write a source into a precomputed volume with its whole pyramid, box by box, resumable.

Each task reads one box of full resolution (a multiple of the chunk size times the pyramid
factors it covers), writes it and every coarser scale it alone determines, then marks itself
done. Scales beyond what one box of the memory budget covers are built in a further pass
from the coarsest scale written so far. Memory per task: about one box, never the volume.
"""

import numpy as np

from ..chunks.boxes import plan_boxes
from ..chunks.journal import Journal, mark_done
from ..chunks.pool import run_tasks
from ..io.precomputed import open_volume, write_box, write_record
from .scales import box_bytes, cumulative, downsample

# Bytes of one box of full-resolution data a task holds (its temporaries are a few times that).
BOX_BUDGET = 64 << 20


class VolumeSource:
    """One scale of a precomputed volume, as a source for the next pass of the pyramid."""

    def __init__(self, url, mip):
        self.url, self.mip = url, mip

    def read(self, box):
        return np.asarray(open_volume(self.url, mip=self.mip)[box.slices()])


def _passes(factors, chunk, dtype, channels, budget):
    """Split the scales into passes: [(first_mip, [factor, ...]), ...] within the budget."""
    passes, mip = [], 0
    while True:
        levels = []
        for factor in factors[mip:]:
            total = cumulative(levels + [factor])[-1]
            if levels and box_bytes([c * t for c, t in zip(chunk, total)], dtype, channels) > budget:
                break
            levels.append(factor)
        passes.append((mip, levels))
        mip += len(levels)
        if mip >= len(factors):
            return passes


def first_box_size(chunk, factors, dtype, channels, budget=None):
    """Size (x, y, z) of the boxes `write_pyramid` reads from its source: a source that computes
    its data (a lazy processed source) can plan its own work on the same grid."""
    levels = _passes(factors, chunk, dtype, channels, BOX_BUDGET if budget is None else budget)[0][1]
    return tuple(c * r for c, r in zip(chunk, cumulative(levels)[-1]))


class _BoxTask:
    """Read a box from the source, write it and the coarser scales it determines (picklable)."""

    def __init__(self, source, url, first_mip, levels, layer_type, write_source):
        self.source, self.url = source, url
        self.first_mip, self.levels, self.layer_type = first_mip, levels, layer_type
        self.write_source = write_source

    def __call__(self, item):
        key, box, bounds = item
        data = self.source.read(box)
        if self.first_mip == 0 and self.write_source:
            write_box(self.url, 0, box, data)
        for i, factor in enumerate(self.levels):
            data = downsample(data, factor, self.layer_type)
            box = box.scaled(factor, bounds[i])
            write_box(self.url, self.first_mip + i + 1, box, data)
        mark_done(self.url, key)
        return key


def write_pyramid(source, url, shape, dtype, channels, chunk, factors, layer_type, jobs,
                  params, record, write_source=True, budget=None):
    """Write `source` (shape x, y, z) and all `factors` scales into the volume at `url`.

    With write_source=False, scale 0 is already in place (the source is the volume itself)
    and only the coarser scales are written. `budget` caps the bytes of one box (default
    BOX_BUDGET; smaller for sources whose read needs several times the box in temporaries)."""
    budget = BOX_BUDGET if budget is None else budget
    journal = Journal(url, params)
    done = journal.done()
    totals = cumulative(factors)
    for first_mip, levels in _passes(factors, chunk, dtype, channels, budget):
        base = totals[first_mip]
        src_shape = tuple(-(-n // f) for n, f in zip(shape, base))
        rel = cumulative(levels)[-1]
        box_size = tuple(c * r for c, r in zip(chunk, rel))
        bounds, level_shape = [], src_shape
        for factor in levels:
            level_shape = tuple(-(-n // f) for n, f in zip(level_shape, factor))
            bounds.append(level_shape)
        src = source if first_mip == 0 else VolumeSource(url, first_mip)
        task = _BoxTask(src, url, first_mip, levels, layer_type, write_source)
        items = [(f"m{first_mip}_{box.key}", box, bounds) for box in plan_boxes(src_shape, box_size)]
        todo = [item for item in items if item[0] not in done]
        for _ in run_tasks(task, todo, jobs=jobs, desc=f"writing scales {first_mip}-{first_mip + len(levels)}"):
            pass
    write_record(url, **record)
    journal.clear()
