"""NIfTI-1: header facts (shape, voxel size in the header's unit, affine, TR) and slab streaming."""

import gzip
import logging
import os

import nibabel as nib
import numpy as np

from ..errors import UserError

_SPACE_UNITS = {"mm": "mm", "micron": "um", "meter": "mm"}
_QUIET = logging.getLogger("neurostation.nifti.check")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())
_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def _file_holder(path):
    """A nibabel FileHolder that does not judge the file by its name (Galaxy's are `*.dat`):
    gzip is recognised by its magic bytes."""
    with open(path, "rb") as handle:
        packed = handle.read(2) == b"\x1f\x8b"
    if packed:
        return nib.FileHolder(fileobj=gzip.open(path, "rb"))
    return nib.FileHolder(filename=path)


def load_nifti(path):
    """Open a NIfTI image lazily; a damaged header or zero voxel size becomes a UserError.

    The header is checked as stored: nibabel would silently replace a zero voxel size by 1.
    """
    name = os.path.basename(path)
    try:
        holder = _file_holder(path)
        with nib.openers.ImageOpener(holder.fileobj or holder.filename) as handle:
            raw = nib.Nifti1Header.from_fileobj(handle, check=False)
        ndim = int(raw["dim"][0])
        zooms = [float(z) for z in raw["pixdim"][1 : 1 + min(max(ndim, 1), 3)]]
        if not all(np.isfinite(z) and z > 0 for z in zooms):
            raise UserError(f"NIfTI {name} has a zero or invalid voxel size {tuple(zooms)}")
        # Problems of level 30 and above (wrong header size, bad magic, bad dims) are fatal.
        raw.check_fix(logger=_QUIET, error_level=30)
        holder = _file_holder(path)
        return nib.Nifti1Image.from_file_map({"header": holder, "image": holder})
    except UserError:
        raise
    except Exception as exc:  # nibabel raises many types on damaged headers/gzip streams
        raise UserError(f"cannot read NIfTI {name}: {exc}") from None


def shape_3d(img):
    """The image's shape without trailing axes of length 1 (a 4D file with one volume is 3D)."""
    shape = tuple(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


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


def load_series(path, min_volumes=3):
    """Open a 4D NIfTI series (x, y, z, time) lazily; 3D images and series too short to
    correlate become a UserError."""
    img = load_nifti(path)
    name = os.path.basename(path)
    if img.ndim != 4:
        shape = " x ".join(str(n) for n in img.shape)
        raise UserError(f"NIfTI {name} is a {img.ndim}D image ({shape}); this step needs a 4D "
                        "series (x, y, z, time)")
    if img.shape[3] < min_volumes:
        raise UserError(f"NIfTI {name} has {img.shape[3]} time point(s); at least {min_volumes} "
                        "are needed")
    return img
