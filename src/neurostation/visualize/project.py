"""Chunk-wise projections of a volume onto its xy, xz and yz planes, binned to picture size.

Every voxel counts: each box is reduced along the projected axis (max or sum), then binned in
the plane (max or sum over `bins` voxels per picture pixel), and merged into the 2D result.
Memory: one box plus the projections (picture-sized), never the volume. A slice is the mean
projection of a region one voxel thick, so slices, checkerboards and tiles use the same code.
"""

import numpy as np

from ..chunks.boxes import Box, plan_boxes
from ..chunks.pool import run_tasks

# Voxels of one box read at a time (its temporaries are a few times that).
BOX_VOXELS = 1 << 23
# The plane each projection axis keeps, in (x, y, z) axis numbers.
PLANE_AXES = {2: (0, 1), 1: (0, 2), 0: (1, 2)}


def box_size(chunk, shape, limit=BOX_VOXELS):
    """A box of whole chunks with at most `limit` voxels: y then x halved while it is too big
    (a huge TIFF plane), else z, y, x doubled while it stays under the limit."""
    size = [min(c, n) for c, n in zip(chunk, shape)]
    for axis in (1, 0):
        while np.prod(size) > limit and size[axis] > 1:
            size[axis] = -(-size[axis] // 2)
    for axis in (2, 1, 0):
        while size[axis] < shape[axis] and np.prod(size) * 2 <= limit:
            size[axis] = min(size[axis] * 2, shape[axis])
    return tuple(size)


def region_boxes(start, stop, size):
    """Boxes of `size` tiling the region [start, stop)."""
    shape = tuple(b - a for a, b in zip(start, stop))
    return [Box(tuple(a + o for a, o in zip(box.start, start)),
                tuple(b + o for b, o in zip(box.stop, start)))
            for box in plan_boxes(shape, size)]


def bin_axis(array, axis, start, factor, ufunc):
    """Reduce runs of `array` along `axis` that fall into the same bin of `factor` voxels,
    the first element lying at global index `start`; returns (binned, first bin index)."""
    if factor == 1:
        return array, start
    cuts = np.flatnonzero((start + np.arange(array.shape[axis])) % factor == 0)
    if cuts.size == 0 or cuts[0] != 0:
        cuts = np.r_[0, cuts]
    return ufunc.reduceat(array, cuts, axis=axis), start // factor


def lowest(dtype):
    """The smallest value of a dtype (the neutral start of a maximum)."""
    dtype = np.dtype(dtype)
    return np.iinfo(dtype).min if dtype.kind in "iu" else False if dtype.kind == "b" else -np.inf


class _ProjectBox:
    """Read a box and reduce it onto the requested planes (picklable, for the process pool)."""

    def __init__(self, source, axes, method, bins, channel=0):
        self.source, self.axes, self.method = source, axes, method
        self.bins, self.channel = bins, channel

    def __call__(self, box):
        data = self.source.read(box)[..., self.channel]
        ufunc = np.maximum if self.method == "max" else np.add
        parts = {}
        for axis in self.axes:
            flat = data.max(axis=axis) if self.method == "max" else \
                data.sum(axis=axis, dtype=np.float64)
            starts = []
            for k, a in enumerate(PLANE_AXES[axis]):
                flat, first = bin_axis(flat, k, box.start[a], self.bins[a], ufunc)
                starts.append(first)
            parts[axis] = (tuple(starts), flat)
        return parts


def project(source, axes=(2, 1, 0), method="max", bins=(1, 1, 1), region=None, jobs=None,
            channel=0, desc="projecting"):
    """{axis: 2D array} — the max or mean of `source` over `region` (default: all of it)
    along each axis, indexed (first, second) plane axis in x, y, z order, binned by `bins`.

    "max" keeps the dtype; "mean" is float64 (each bin's sum over its voxel count).
    """
    start, stop = region or ((0, 0, 0), tuple(source.shape))
    extent = [b - a for a, b in zip(start, stop)]
    out = {}
    for axis in axes:
        a, b = PLANE_AXES[axis]
        shape = tuple(-(-stop[k] // bins[k]) - start[k] // bins[k] for k in (a, b))
        out[axis] = np.full(shape, lowest(source.dtype), source.dtype) if method == "max" \
            else np.zeros(shape)
    boxes = region_boxes(start, stop, box_size(source.chunk, extent))
    task = _ProjectBox(source, axes, method, bins, channel)
    for parts in run_tasks(task, boxes, jobs, desc=desc):
        for axis, ((i0, j0), flat) in parts.items():
            a, b = PLANE_AXES[axis]
            i0, j0 = i0 - start[a] // bins[a], j0 - start[b] // bins[b]
            view = out[axis][i0:i0 + flat.shape[0], j0:j0 + flat.shape[1]]
            if method == "max":
                np.maximum(view, flat, out=view)
            else:
                view += flat
    if method == "mean":
        for axis in axes:
            a, b = PLANE_AXES[axis]
            counts = np.outer(_region_counts(start[a], stop[a], bins[a]),
                              _region_counts(start[b], stop[b], bins[b]))
            out[axis] /= counts * extent[axis]
    return out


def _region_counts(start, stop, factor):
    """Voxels of [start, stop) in each bin of `factor` voxels that the range touches."""
    return np.bincount(np.arange(start, stop) // factor)[start // factor:].astype(np.float64)
