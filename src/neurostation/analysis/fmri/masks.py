"""Masks and label images for a 4D series: read onto the series' grid, or computed from it."""

import os
import sys

import numpy as np

from ...errors import UserError
from ...io.grids import nearest_on_grid, same_grid
from ...io.nifti import load_nifti


def volume_on_grid(path, series, role):
    """A 3D label/mask image as an array on the series' grid; a different grid is resampled
    with nearest neighbour, with a warning."""
    img = load_nifti(path)
    name = os.path.basename(path)
    shape = tuple(n for n in img.shape[3:] if n != 1)
    if img.ndim < 3 or shape:
        dims = " x ".join(str(n) for n in img.shape)
        raise UserError(f"{role} {name} is a {img.ndim}D image ({dims}); give a 3D volume")
    try:
        data = np.asanyarray(img.dataobj).reshape(img.shape[:3])
    except Exception as exc:  # truncated data surfaces here
        raise UserError(f"cannot read the voxels of {role} {name}: {exc}") from None
    if not same_grid(img.shape, img.affine, series.shape, series.affine):
        print(f"warning: {role} {name} is on another grid than the series; resampled with "
              "nearest neighbour", file=sys.stderr)
        data = nearest_on_grid(data, img.affine, series.shape, series.affine)
    return np.nan_to_num(data)


def brain_mask(series, path=None):
    """The given mask (non-zero voxels) on the series' grid, or one computed from the series
    like nilearn's compute_epi_mask (which it calls)."""
    if path:
        mask = volume_on_grid(path, series, "mask") != 0
        if not mask.any():
            raise UserError(f"mask {os.path.basename(path)} selects no voxel of the series: no "
                            "overlap with the data")
        return mask
    import warnings

    from nilearn.masking import compute_epi_mask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty mask is reported below, in our words
        mask = np.asanyarray(compute_epi_mask(series).dataobj) != 0
    if not mask.any():
        raise UserError("the brain mask computed from the series (as nilearn's "
                        "compute_epi_mask) is empty: the series may not be EPI data, or it was "
                        "detrended; give a mask")
    return mask
