"""The QC picture: panels laid out at one physical scale, titles, a scale bar in physical
units and a caption, saved as an RGB PNG of a fixed size (matplotlib Agg, no display).

Layouts: "ortho" puts xy top left, yz to its right (sharing y) and xz below it (sharing x);
"row" puts panels side by side. All panels share one pixels-per-nanometre scale, so the one
scale bar holds for each of them and anisotropic voxels keep their physical aspect.
"""

import math
from dataclasses import dataclass, field

import numpy as np

WIDTH, HEIGHT, DPI = 1200, 900, 100  # pixels of every `neurostation qc` picture
TOP, SIDE, GAP, CAPTION = 36, 24, 30, 110  # margins, gap between panels, caption strip (px)
MIN_PANEL = 4  # px: a very thin panel (a few sections) is drawn at least this wide


@dataclass
class Panel:
    """A 2D picture (rows, cols[, 3]) covering `size_nm` (width, height), with a title."""

    image: np.ndarray
    size_nm: tuple
    title: str
    draw: list = field(default_factory=list)  # callables(ax, rect) adding vector overlays


def unit_for(nm, least=1.0):
    """(unit, nm per unit) that shows a length of `nm` as a number of at least `least`."""
    return next(((u, f) for u, f in (("mm", 1e6), ("µm", 1e3)) if nm >= least * f), ("nm", 1.0))


def format_lengths(values_nm, least=0.1):
    """Lengths in nm as text in one readable unit, e.g. `0.5 x 0.5 x 2 µm`."""
    unit, factor = unit_for(min(values_nm), least)
    return " x ".join(f"{v / factor:g}" for v in values_nm) + f" {unit}"


def nice_length(target_nm):
    """The round length (1, 2 or 5 x 10^n nm) at most `target_nm`, and its label."""
    power = 10 ** math.floor(math.log10(target_nm))
    length = max(m * power for m in (1, 2, 5) if m * power <= target_nm)
    return length, format_lengths([length], least=1.0)


def layout(sizes_nm, kind, width=WIDTH, height=HEIGHT, top=TOP, caption=CAPTION):
    """Pixel rectangles (left, top, width, height) of the panels and the scale (px per nm).

    ortho: sizes of xy, xz, yz (xz's width is xy's, yz's height is xy's); row: any number.
    """
    avail_w, avail_h = width - 2 * SIDE, height - top - caption
    if kind == "ortho":
        (xw, yh), (_, zh), (zw, _) = sizes_nm
        scale = min((avail_w - GAP) / (xw + zw), (avail_h - GAP) / (yh + zh))
        px = [max(MIN_PANEL, round(v * scale)) for v in (xw, yh, zw, zh)]
        rects = [(SIDE, top, px[0], px[1]), (SIDE, top + px[1] + GAP, px[0], px[3]),
                 (SIDE + px[0] + GAP, top, px[2], px[1])]
        return rects, scale
    gaps = GAP * (len(sizes_nm) - 1)
    scale = min((avail_w - gaps) / sum(w for w, _ in sizes_nm), avail_h / max(h for _, h in sizes_nm))
    rects, left = [], SIDE
    for w, h in sizes_nm:
        rect = (left, top, max(MIN_PANEL, round(w * scale)), max(MIN_PANEL, round(h * scale)))
        rects.append(rect)
        left += rect[2] + GAP
    return rects, scale


def render(panels, path, kind="ortho", caption="", unit_known=True, width=WIDTH, height=HEIGHT,
           top=TOP, caption_px=CAPTION):
    """Draw `panels` and save the picture as an RGB PNG of width x height pixels."""
    rects, scale = layout([p.size_nm for p in panels], kind, width, height, top, caption_px)
    fig, canvas = new_figure(width, height)
    for panel, rect in zip(panels, rects):
        add_panel(fig, panel, rect, width, height)
    add_scale_bar(fig, scale, unit_known, width, height, caption_px)
    add_caption(fig, caption, width, height)
    save_rgb(canvas, path)


def new_figure(width=WIDTH, height=HEIGHT):
    """A white matplotlib figure of width x height pixels on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    return fig, FigureCanvasAgg(fig)


def add_caption(fig, text, width, height):
    """The caption at the bottom left, wrapped to the picture's width."""
    fig.text(SIDE / width, 8 / height, text, fontsize=9, va="bottom", ha="left", wrap=True)


def save_rgb(canvas, path):
    """Draw the figure and save it as an RGB PNG (no alpha channel)."""
    from PIL import Image

    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG")


def axes_at(fig, rect, width, height):
    """Axes filling the pixel rectangle (left, top, w, h) of the figure."""
    left, top, w, h = rect
    return fig.add_axes([left / width, 1 - (top + h) / height, w / width, h / height])


def add_panel(fig, panel, rect, width, height):
    """One image panel: pixels stretched over the rectangle (the layout keeps the aspect)."""
    ax = axes_at(fig, rect, width, height)
    rows, cols = panel.image.shape[:2]
    ax.imshow(panel.image, aspect="auto", interpolation="nearest", cmap="gray", vmin=0, vmax=255,
              extent=(0, cols, rows, 0))
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_axis_off()
    for draw in panel.draw:
        draw(ax)
    fig.text(rect[0] / width, 1 - (rect[1] - 4) / height, panel.title, fontsize=9,
             va="bottom", ha="left")


def add_scale_bar(fig, scale, unit_known, width, height, caption_px):
    """A black bar of a round physical length (about a fifth of the width) in the caption strip."""
    from matplotlib.patches import Rectangle

    length_nm, label = nice_length((width - 2 * SIDE) / 5 / scale)
    if not unit_known:
        label = f"{length_nm:g} voxels"
    bar_px = length_nm * scale
    y = height - caption_px + 8
    fig.add_artist(Rectangle((SIDE / width, 1 - (y + 6) / height), bar_px / width, 6 / height,
                             transform=fig.transFigure, color="black"))
    fig.text((SIDE + bar_px + 8) / width, 1 - (y + 3) / height, label, fontsize=9, va="center")


def grey(image, lo, hi):
    """Intensities to 0..255 uint8 between lo and hi (the display window)."""
    scaled = (np.asarray(image, np.float64) - lo) / max(hi - lo, 1e-12)
    return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def window(images, percentiles=(0.1, 99.9)):
    """One display window (lo, hi) for several images: percentiles of all their values."""
    values = np.concatenate([np.ravel(np.asarray(i, np.float64)) for i in images])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, percentiles)
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return float(lo), float(hi if hi > lo else lo + 1)
