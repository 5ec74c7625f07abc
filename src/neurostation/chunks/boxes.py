"""Chunk-aligned boxes over a volume, in x, y, z voxel coordinates."""

from dataclasses import dataclass
from itertools import product


@dataclass(frozen=True, order=True)
class Box:
    """A half-open box [start, stop) in (x, y, z) voxels."""

    start: tuple
    stop: tuple

    @property
    def shape(self):
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def key(self):
        """The Neuroglancer-style name `x0-x1_y0-y1_z0-z1`."""
        return "_".join(f"{a}-{b}" for a, b in zip(self.start, self.stop))

    def slices(self):
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def scaled(self, factor, bounds):
        """This box at a coarser scale (divided by `factor`, rounded out, clipped to `bounds`)."""
        start = tuple(a // f for a, f in zip(self.start, factor))
        stop = tuple(min(-(-b // f), n) for b, f, n in zip(self.stop, factor, bounds))
        return Box(start, stop)


def plan_boxes(shape, box_size):
    """Boxes of `box_size` tiling a volume of `shape` from the origin (the last ones clipped)."""
    ranges = [range(0, n, s) for n, s in zip(shape, box_size)]
    return [
        Box(tuple(starts), tuple(min(a + s, n) for a, s, n in zip(starts, box_size, shape)))
        for starts in (tuple(reversed(p)) for p in product(*reversed(ranges)))
    ]
