"""Halos: a box read with the margin an operation needs, so that chunk-wise equals in-memory.

A box is grown by the operation's halo (voxels per axis) and read from the volume: the real
neighbouring voxels inside the volume, and only beyond the true volume border the border mode
of the in-memory reference (scipy's names: reflect, nearest, mirror, constant zero). The
operation runs on that and the result is cropped back to the box.
"""

import numpy as np

from ..errors import UserError
from .boxes import Box

# scipy.ndimage border modes -> the numpy.pad mode that extends an array the same way. Only
# modes that look at the border's own side: scipy's "wrap" needs the far side of the volume.
BORDER_MODES = {"reflect": "symmetric", "nearest": "edge", "mirror": "reflect",
                "constant": "constant"}


def sigma_halo(sigma, truncate=4.0):
    """The radius scipy's gaussian_filter uses per axis: int(truncate * sigma + 0.5)."""
    return tuple(int(truncate * float(s) + 0.5) for s in sigma)


def footprint_halo(shape):
    """The reach of a centred footprint of `shape` (scipy puts the centre at size // 2)."""
    return tuple(int(n) // 2 for n in shape)


def read_with_halo(source, box, halo, mode):
    """`source.read` of `box` grown by `halo` (x, y, z voxels) as an (x, y, z, c) array: the
    neighbours inside the volume as they are, the border `mode` outside it."""
    if mode not in BORDER_MODES:
        raise UserError(f"border mode must be one of {', '.join(BORDER_MODES)}, got {mode!r}")
    start = tuple(max(0, a - h) for a, h in zip(box.start, halo))
    stop = tuple(min(n, b + h) for b, h, n in zip(box.stop, halo, source.shape))
    data = source.read(Box(start, stop))
    pad = [(h - (a - s), h - (t - b)) for a, b, s, t, h in zip(box.start, box.stop, start, stop, halo)]
    if not any(p for pair in pad for p in pair):
        return data
    return np.pad(data, pad + [(0, 0)] * (data.ndim - 3), mode=BORDER_MODES[mode])


def crop_halo(data, halo):
    """The box inside an array read with `halo` (the inverse of the growth in read_with_halo)."""
    return data[tuple(slice(h, data.shape[i] - h) for i, h in enumerate(halo))]


class HaloSource:
    """A lazy processed source: read(box) reads the box with `halo` from `source`, applies
    `operation` (an (x, y, z, c) array -> an array of the same shape, picklable) and crops."""

    def __init__(self, source, operation, halo, mode, dtype):
        self.source, self.operation = source, operation
        self.halo, self.mode, self.dtype = tuple(int(h) for h in halo), mode, np.dtype(dtype)
        self.shape, self.channels = tuple(source.shape), source.channels

    def read(self, box):
        data = self.operation(read_with_halo(self.source, box, self.halo, self.mode))
        return np.asfortranarray(crop_halo(data, self.halo).astype(self.dtype, copy=False))
