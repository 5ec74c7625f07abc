"""A 3D label atlas on the grid of a 4D series: resampled (nearest neighbour) when the grids
differ, with labels that would be lost reported by name."""

import os
import sys

import nibabel as nib
import numpy as np

from ...errors import UserError
from ...io.grids import nearest_on_grid
from ...io.nifti import load_nifti, shape_3d


def load_labels(path):
    """The atlas as a 3D NIfTI of whole-number labels (a trailing axis of length 1 is dropped)."""
    img = load_nifti(path)
    name = os.path.basename(path)
    shape = shape_3d(img)
    if len(shape) != 3:
        raise UserError(f"the atlas {name} has shape {img.shape}; give a 3D label image")
    data = np.asanyarray(img.dataobj).reshape(shape)
    if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
        raise UserError(f"the atlas {name} holds values that are not whole numbers; give a label "
                        "image (0 = background)")
    return nib.Nifti1Image(data.astype(np.int32), img.affine)


def region_names(labels, names):
    """Column names of the regions: the label-names table's names, else the label numbers."""
    names = names or {}
    return [names.get(int(v), str(int(v))) for v in labels]


def on_grid(atlas, shape, affine, names=None, atlas_name="atlas"):
    """(label volume on the series grid, ascending labels). Resamples with nearest neighbour
    (like nilearn's NiftiLabelsMasker) when the grids differ, warning once."""
    data = np.asanyarray(atlas.dataobj)
    labels = np.unique(data)
    labels = labels[labels != 0]
    if labels.size == 0:
        raise UserError(f"the atlas {atlas_name} has no labelled voxel (all 0)")
    if data.shape != tuple(shape) or not np.allclose(atlas.affine, affine, atol=1e-5):
        data = nearest_on_grid(data, atlas.affine, shape, affine)
        warning = (f"warning: the atlas {atlas_name} ({' x '.join(map(str, atlas.shape))} "
                   f"voxels) is on another grid than the series ({' x '.join(map(str, shape))}); "
                   "it is resampled to the series grid with nearest-neighbour interpolation")
        kept = np.unique(data)
        kept = kept[kept != 0]
        if kept.size == 0:
            raise UserError(f"the atlas {atlas_name} does not overlap the series: no labelled "
                            "voxel falls inside its field of view (check that both are in the "
                            "same space)")
        lost = [v for v in labels if v not in set(kept.tolist())]
        if lost:
            shown = ", ".join(f"{n} ({int(v)})" if n != str(int(v)) else n
                              for v, n in zip(lost, region_names(lost, names)))
            raise UserError(f"{len(lost)} atlas region(s) vanish when the atlas {atlas_name} is "
                            f"resampled to the series grid: {shown}; use a finer series or an "
                            "atlas with larger regions")
        print(warning, file=sys.stderr)
    return data.astype(np.int64), labels.astype(np.int64)
