"""Synthetic fMRI for the tests: 4D series whose region means have a planted correlation
matrix, block atlases, and label atlases cut from real images shipped in packages."""

import os

import nibabel as nib
import numpy as np

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
AFFINE[:3, 3] = (-30.0, -36.0, -18.0)


def exact_signals(corr, n_t, seed=0, scale=10.0, offset=100.0):
    """Volumes x regions signals whose sample correlation is exactly `corr`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_t, len(corr)))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)  # orthonormal, zero-mean columns
    return offset + scale * np.sqrt(n_t - 1) * q @ np.linalg.cholesky(corr).T


def block_atlas(shape=(12, 10, 8), splits=(2, 2, 2)):
    """Label image (int16) of boxes numbered 1.. in x-fastest order, background border 0."""
    labels = np.zeros(shape, np.int16)
    inner = [np.array_split(np.arange(1, n - 1), k) for n, k in zip(shape, splits)]
    k = 0
    for zs in inner[2]:
        for ys in inner[1]:
            for xs in inner[0]:
                k += 1
                labels[np.ix_(xs, ys, zs)] = k
    return labels


def series_from_signals(labels, signals, seed=1, noise=5.0, tr=2.0):
    """4D float32 image: every voxel of region r carries signal r plus voxel noise whose mean
    over the region is 0 at every time point, so the region means are exactly the signals."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0, noise, labels.shape + (len(signals),))
    for r in range(signals.shape[1]):
        inside = labels == r + 1
        data[inside] -= data[inside].mean(axis=0)
        data[inside] += signals[:, r]
    data[labels == 0] = rng.normal(50, noise, ((labels == 0).sum(), len(signals)))
    img = nib.Nifti1Image(data.astype(np.float64), AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    return img


def save(img, folder, name):
    path = os.path.join(str(folder), name)
    nib.save(img, path)
    return path


def nibabel_data(name):
    return os.path.join(os.path.dirname(nib.__file__), "tests", "data", name)


def mni_template():
    import nilearn

    return os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data",
                        "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")


def quantile_atlas(img, n_levels, mask_below=None):
    """Atlas-like labels from a real 3D image: intensity quantiles x left/right halves."""
    data = np.asanyarray(img.dataobj).astype(float)
    if data.ndim == 4:
        data = data.mean(axis=3)
    mask = data > (mask_below if mask_below is not None else np.percentile(data, 30))
    edges = np.quantile(data[mask], np.linspace(0, 1, n_levels + 1)[1:-1])
    levels = np.digitize(data, edges)
    half = (np.arange(data.shape[0]) >= data.shape[0] // 2)[:, None, None]
    labels = np.where(mask, 1 + levels + n_levels * half, 0).astype(np.int16)
    return nib.Nifti1Image(labels, img.affine)
