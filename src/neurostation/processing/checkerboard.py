"""Checkerboard QC picture: template and registered image in alternating squares, mid slices
in three orientations, so misaligned edges show as breaks at the square borders."""

import numpy as np

WIDTH, HEIGHT, DPI = 900, 330, 100  # pixels of the PNG


def normalise(volume):
    """Intensities scaled to 0..1 between the 1st and 99th percentile of the non-zero voxels."""
    values = volume[volume != 0]
    if values.size == 0:
        return np.zeros(volume.shape)
    lo, hi = np.percentile(values, (1, 99))
    return np.clip((volume - lo) / max(hi - lo, 1e-12), 0, 1)


def checker(a, b, squares):
    """`a` in the even squares, `b` in the odd ones (2D planes of one shape)."""
    size = max(1, max(a.shape) // squares)
    rows, cols = np.indices(a.shape) // size
    return np.where((rows + cols) % 2 == 0, a, b)


def mid_planes(volume):
    """Sagittal, coronal and axial mid planes of an (x, y, z) volume, oriented for display
    (rows from top to bottom)."""
    x, y, z = (n // 2 for n in volume.shape)
    return [volume[x, :, :].T[::-1], volume[:, y, :].T[::-1], volume[:, :, z].T[::-1]]


def write_checkerboard(template, registered, path, squares=8):
    """Save the three checkerboard panels as a WIDTH x HEIGHT PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.05)
    titles = ("sagittal", "coronal", "axial")
    pairs = zip(mid_planes(normalise(template)), mid_planes(normalise(registered)), titles)
    for ax, (a, b, title) in zip(axes, pairs):
        ax.imshow(checker(a, b, squares), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}: template / registered", fontsize=8)
        ax.axis("off")
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
