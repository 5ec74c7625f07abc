"""A whole 3D grey volume from NIfTI, TIFF z-stack or precomputed (one scale) as a float64
(x, y, z) array with its voxel-to-world affine in mm — what registration works on."""

import os

import numpy as np

from ..chunks.boxes import Box
from ..errors import UserError
from ..io.detect import detect_format
from ..units import convert


def _grey(xyzc, name):
    if xyzc.shape[3] != 1:
        raise UserError(f"{name} has {xyzc.shape[3]} channels; registration takes one grey "
                        "channel")
    return np.asarray(xyzc[..., 0], np.float64)


def read_tiff(path, name):
    """A TIFF z-stack with its voxel size (unit from its metadata) as an axis-aligned affine."""
    from ..io.sources import TiffStack

    stack = TiffStack(path, name)
    if any(v is None for v in stack.voxel_size):
        raise UserError(f"TIFF {name} does not record its voxel size (x, y and z); save it "
                        "as OME-TIFF or ImageJ TIFF with the voxel size, or as NIfTI")
    data = _grey(stack.read(Box((0, 0, 0), stack.shape)), name)
    affine = np.diag(list(convert(stack.voxel_size, stack.voxel_unit, "mm")) + [1.0])
    return data, affine


def read_precomputed(path, name, scale):
    """One scale of a precomputed volume, placed like `cutout` places it (its source affine
    when it was ingested from NIfTI, else voxel size in mm from the origin)."""
    from ..io.precomputed import open_complete, read_record, resolve_volume
    from ..storage.cutout import region_affine

    vol = open_complete(path, scale, option="--scale")
    size = [int(n) for n in vol.info["scales"][scale]["size"]]
    data = _grey(np.asarray(vol[0:size[0], 0:size[1], 0:size[2]]), name)
    resolution = [float(r) for r in vol.info["scales"][scale]["resolution"]]
    base = [float(r) for r in vol.info["scales"][0]["resolution"]]
    factor = [round(r / b) for r, b in zip(resolution, base)]
    return data, region_affine(read_record(resolve_volume(path)), resolution, factor, (0, 0, 0))


def read_any(path, scale, read_nifti):
    """(array, affine) of a NIfTI (through `read_nifti`), TIFF or precomputed volume."""
    name = os.path.basename(str(path).rstrip("/")) or str(path)
    kind = detect_format(path)
    if kind == "nifti":
        return read_nifti(path)
    if scale and kind not in ("precomputed", "reference"):
        raise UserError(f"--scale applies to precomputed volumes; {name} is a {kind} file")
    if kind == "tiff":
        return read_tiff(path, name)
    return read_precomputed(path, name, scale)
