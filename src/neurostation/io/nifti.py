"""NIfTI-1: header facts (shape, voxel size in the header's unit, affine, TR) and slab streaming."""

import os

import nibabel as nib
import numpy as np

from ..errors import UserError

_SPACE_UNITS = {"mm": "mm", "micron": "um", "meter": "mm"}
_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def load_nifti(path):
    """Open a NIfTI image lazily; a damaged file or header becomes a one-line UserError."""
    name = os.path.basename(path)
    try:
        img = nib.Nifti1Image.from_filename(path)
    except Exception as exc:  # nibabel raises many types on damaged headers/gzip streams
        raise UserError(f"cannot read NIfTI {name}: {exc}") from None
    zooms = img.header.get_zooms()[:3]
    if img.ndim < 3 and len(zooms) < 3:
        zooms = tuple(zooms) + (1.0,) * (3 - len(zooms))
    if not all(np.isfinite(z) and z > 0 for z in zooms[: min(img.ndim, 3)]):
        raise UserError(f"NIfTI {name} has a zero or invalid voxel size {tuple(map(float, zooms))}")
    return img


def describe_nifti(path):
    """Shape (x, y, z[, t]), dtype, voxel size with unit, affine and TR in seconds."""
    img = load_nifti(path)
    hdr = img.header
    space_unit, time_unit = hdr.get_xyzt_units()
    unit = _SPACE_UNITS.get(space_unit, "mm")  # NIfTI 'unknown' is conventionally mm
    zooms = [float(z) for z in hdr.get_zooms()]
    size = zooms[:3] + [1.0] * (3 - len(zooms[:3]))
    if space_unit == "meter":
        size = [v * 1000 for v in size]
    tr = None
    if img.ndim >= 4 and len(zooms) >= 4:
        tr = zooms[3] * _TIME_TO_S.get(time_unit, 1.0)
    return {
        "format": "nifti",
        "axes": "XYZT"[: img.ndim] if img.ndim <= 4 else "XYZT" + "C" * (img.ndim - 4),
        "shape": tuple(int(n) for n in img.shape),
        "dtype": img.get_data_dtype().name,
        "voxel_size": tuple(size),
        "voxel_unit": unit,
        "affine": img.affine.tolist(),
        "tr_s": tr,
    }


def iter_nifti_blocks(path, slab=16):
    """Yield slabs of `slab` z-planes (all time points), scaled like nibabel's get_fdata."""
    img = load_nifti(path)
    if img.ndim < 3:
        yield np.asanyarray(img.dataobj)
        return
    for z0 in range(0, img.shape[2], slab):
        try:
            yield np.asanyarray(img.dataobj[:, :, z0 : z0 + slab, ...])
        except Exception as exc:  # truncated gzip/raw data surfaces here
            raise UserError(f"cannot read the voxels of NIfTI {os.path.basename(path)}: {exc}") from None
