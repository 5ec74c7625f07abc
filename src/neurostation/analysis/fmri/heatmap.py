"""Heatmap PNG of a connectivity matrix: diverging colours centred at 0, region labels and a
colour bar."""

import numpy as np

from ...io.outputs import staged_file

SIZE_IN = (8.0, 7.0)  # figure size in inches at DPI: 800 x 700 pixels
DPI = 100


def draw(path, names, matrix, title, label):
    """Write the heatmap of `matrix` (square, rows/columns named `names`) to `path` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    off = matrix[~np.eye(len(matrix), dtype=bool)]
    finite = off[np.isfinite(off)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax or 1.0
    fig, ax = plt.subplots(figsize=SIZE_IN, dpi=DPI)
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    n = len(names)
    step = max(1, int(np.ceil(n / 40)))  # at most ~40 readable tick labels
    ticks = np.arange(0, n, step)
    font = 8 if n <= 20 else 6
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=font)
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=font)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
    fig.subplots_adjust(left=0.18, bottom=0.2, right=0.86, top=0.93)
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
