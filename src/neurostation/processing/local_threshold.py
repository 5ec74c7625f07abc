"""Local (adaptive) thresholds, Sauvola and Niblack, box by box: each box is read with a halo of
window // 2 voxels (chunks/halo.py; numpy's reflect beyond the volume's border, as scikit-image
pads), the local threshold is scikit-image's threshold_sauvola / threshold_niblack on that, and
the mask (image > threshold) is cropped back to the box. Every window of a box's voxels lies in
what was read, so the mask equals scikit-image's on the whole volume in memory; only voxels
within float rounding of their threshold can differ (the integral images start elsewhere).
"""

import math

import numpy as np

from ..chunks.boxes import Box, plan_boxes
from ..chunks.halo import HaloSource, footprint_halo
from ..errors import UserError
from .filter import sigma_voxels

METHODS = ("sauvola", "niblack")
DEFAULT_WINDOW = 15  # voxels: scikit-image's default window_size
DEFAULT_K = 0.2  # scikit-image's default k of both methods
K_RANGE = {"sauvola": (0.0, 1.0), "niblack": (-2.0, 2.0)}
# Voxels of one box with its halo: scikit-image holds a float64 copy, two float64 integral images
# and a few float temporaries of that size, some 64 bytes a voxel, so about 128 MiB per process.
BOX_VOXELS = 1 << 21


def odd_voxels(length):
    """The odd number of voxels nearest to `length` voxels (halves round up)."""
    return 2 * math.floor((length - 1) / 2 + 0.5) + 1


def window_voxels(size, unit, voxel_nm, planar, shape):
    """--window in --unit -> an odd (x, y, z) window in voxels (z 1 with --2d), checked
    against the volume: at least 3 voxels and at most the volume's extent on each axis used."""
    if size is None or not size > 0:
        raise UserError(f"--window must be a positive size, got {size}")
    if unit == "voxel":
        if size != int(size) or int(size) % 2 == 0:
            raise UserError(f"--window must be an odd number of voxels (3, 5, 7, ...), got {size:g}")
        window = (int(size),) * 3
    else:
        window = tuple(odd_voxels(v) for v in sigma_voxels(size, unit, voxel_nm, False, "--window"))
    if planar:
        window = window[:2] + (1,)
    given = f"--window {size:g}" + ("" if unit == "voxel" else f" {unit}")
    for axis, w, n in zip("xyz", window, shape):
        if axis == "z" and planar:
            continue
        if w < 3:
            raise UserError(f"{given} is {w} voxel along {axis}; a local threshold needs at least "
                            "3" + ("" if planar else " (--2d: a window in each xy plane)"))
        if w > n:
            raise UserError(f"{given} is {w} voxels along {axis}, more than the volume's {n}")
    return window


def check_k(method, k):
    low, high = K_RANGE[method]
    if not low <= k <= high:
        raise UserError(f"--k must be within [{low:g}, {high:g}] for {method}, got {k:g}")
    return k


def default_r(dtype):
    """Sauvola's R by default: half the data type's range, as scikit-image (1 for floats)."""
    from skimage.util import dtype_limits

    low, high = dtype_limits(np.empty(0, dtype), clip_negative=False)
    return 0.5 * (high - low)


class LocalThreshold:
    """(x, y, z, c) data -> the uint8 mask (x, y, z, 1) of channel 0 > its local threshold."""

    def __init__(self, method, window, k, r, invert):
        self.method, self.window, self.k, self.r, self.invert = method, tuple(window), k, r, invert

    def __call__(self, data):
        from skimage.filters import threshold_niblack, threshold_sauvola

        image = data[..., 0]
        if self.method == "sauvola":
            t = threshold_sauvola(image, self.window, k=self.k, r=self.r)
        else:
            t = threshold_niblack(image, self.window, k=self.k)
        above = image > t
        return (~above if self.invert else above)[..., None]


def tiles(box, core):
    """Boxes of at most `core` voxels per axis tiling `box`."""
    shift = lambda corner: tuple(a + o for a, o in zip(corner, box.start))  # noqa: E731
    return [Box(shift(b.start), shift(b.stop)) for b in plan_boxes(box.shape, core)]


def tile_core(halo):
    """The box edge (x, y, z) whose volume with the halo stays near BOX_VOXELS."""
    core = [256, 256, 256]
    while math.prod(c + 2 * h for c, h in zip(core, halo)) > BOX_VOXELS and max(core) > 1:
        i = int(np.argmax(core))
        core[i] = max(1, core[i] // 2)
    return tuple(core)


class LocalMaskSource:
    """A lazy source whose read(box) is the local-threshold mask of `source` (uint8 0/1): any
    box is cut into tiles that hold, with their halo, about BOX_VOXELS voxels."""

    dtype, channels = np.dtype(np.uint8), 1

    def __init__(self, source, method, window, k, r, invert):
        self.halo = footprint_halo(window)
        self.masked = HaloSource(source, LocalThreshold(method, window, k, r, invert), self.halo,
                                 "mirror", np.uint8)
        self.core = tile_core(self.halo)
        self.shape, self.voxel_nm, self.name = tuple(source.shape), source.voxel_nm, source.name

    def read(self, box):
        out = np.empty(box.shape + (1,), np.uint8, order="F")
        for part in tiles(box, self.core):
            out[tuple(slice(a - o, b - o) for a, b, o in zip(part.start, part.stop, box.start))] = (
                self.masked.read(part))
        return out
