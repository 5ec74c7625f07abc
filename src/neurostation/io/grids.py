"""Voxel grids: comparing two NIfTI grids and carrying a label/mask volume onto another grid."""

import numpy as np


def same_grid(shape_a, affine_a, shape_b, affine_b, atol=1e-4):
    """True when two grids have the same shape (x, y, z) and voxel-to-world affine."""
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and np.allclose(affine_a, affine_b, atol=atol)


def nearest_on_grid(data, affine, shape, target_affine):
    """A volume's values at the voxel centres of another grid (nearest neighbour, 0 outside):
    how label images and masks follow a grid without inventing labels (nilearn's resampling,
    the same one its maskers apply to atlases)."""
    import nibabel as nib
    from nilearn.image import resample_img

    resampled = resample_img(nib.Nifti1Image(np.asarray(data), affine), target_affine=target_affine,
                             target_shape=tuple(shape[:3]), interpolation="nearest",
                             force_resample=True, copy_header=True, fill_value=0)
    return np.asanyarray(resampled.dataobj)


def voxel_sizes(affine):
    """The voxel size along each array axis of a voxel-to-world affine (lengths of its columns)."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))
