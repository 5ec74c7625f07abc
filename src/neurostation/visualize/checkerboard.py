"""Checkerboard QC picture of two images on one grid: one image in the even squares, the other
in the odd ones, so misaligned edges show as breaks at the square borders. Used by
`neurostation register` (template / registered, mid planes) and `neurostation qc checkerboard`
(any two volumes with the same grid, planes through a chosen voxel)."""

import numpy as np

from .figure import Panel, grey, render

# `register`'s picture: three mid planes in a row.
REGISTER_WIDTH, REGISTER_HEIGHT = 900, 330


def normalise(arrays):
    """Scale arrays to 0..1 together, between the 1st and 99th percentile of their non-zero
    values (background zeros do not dilute the window)."""
    values = np.concatenate([np.ravel(a)[np.ravel(a) != 0] for a in arrays])
    if values.size == 0:
        return [np.zeros(np.shape(a)) for a in arrays]
    lo, hi = np.percentile(values, (1, 99))
    if hi <= lo:  # a flat image (e.g. a mask): its value is the top of the window
        lo, hi = min(0.0, float(values.min())), float(values.max())
    return [np.clip((np.asarray(a, np.float64) - lo) / max(hi - lo, 1e-12), 0, 1) for a in arrays]


def checker(a, b, squares):
    """`a` in the even squares, `b` in the odd ones (2D planes of one shape); `squares` along
    the longer side."""
    size = max(1, max(a.shape) // squares)
    rows, cols = np.indices(a.shape) // size
    return np.where((rows + cols) % 2 == 0, a, b)


def checker_panels(planes_a, planes_b, sizes_nm, titles, squares):
    """Panels of the checkerboard of matching planes of two images, each image scaled 0..1."""
    return [Panel(grey(checker(a, b, squares), 0, 1), size, title)
            for a, b, size, title in zip(normalise(planes_a), normalise(planes_b), sizes_nm, titles)]


def mid_planes(volume):
    """Sagittal, coronal and axial mid planes of an (x, y, z) volume, oriented for display
    (rows from top to bottom, superior and anterior up)."""
    x, y, z = (n // 2 for n in volume.shape)
    return [volume[x, :, :].T[::-1], volume[:, y, :].T[::-1], volume[:, :, z].T[::-1]]


def write_checkerboard(template, registered, path, voxel_mm, squares=8):
    """`register`'s QC: the three mid-plane checkerboards in a row, with a scale bar, as a
    REGISTER_WIDTH x REGISTER_HEIGHT PNG."""
    nx, ny, nz = (n * v * 1e6 for n, v in zip(template.shape, voxel_mm))
    sizes = [(ny, nz), (nx, nz), (nx, ny)]
    titles = [f"{t}: template / registered" for t in ("sagittal", "coronal", "axial")]
    panels = checker_panels(mid_planes(template), mid_planes(registered), sizes, titles, squares)
    render(panels, path, kind="row", caption=f"squares: template, registered alternating; "
           f"voxel {' x '.join(f'{v:g}' for v in voxel_mm)} mm",
           width=REGISTER_WIDTH, height=REGISTER_HEIGHT, top=24, caption_px=50)
