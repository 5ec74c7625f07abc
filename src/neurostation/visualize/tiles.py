"""Stitching QC: a mosaic section with each tile's outline (from `stitch`'s positions.tsv) and
the overlaps where neighbouring tiles were blended (the seams) shaded."""

import math
import os

import numpy as np

from ..analysis.fmri.tables import read_tsv, to_numbers
from ..errors import UserError
from .contours import COLOURS
from .figure import Panel, grey, layout, render, window
from .project import project
from .panels import describe, voxel_nm

SEAM_COLOUR = "yellow"


def read_positions(path, section):
    """[(tile, x, y)] of one section from positions.tsv (`[section] tile row col x y`)."""
    name = os.path.basename(path)
    frame = read_tsv(path, "positions table")
    if not {"tile", "x", "y"} <= set(frame.columns):
        raise UserError(f"the positions table {name} needs columns tile, x and y (as `neurostation "
                        f"stitch --positions` writes them); got {', '.join(frame.columns)}")
    if "section" in frame.columns:
        sections = to_numbers(frame[["section"]], "positions table", name)[:, 0]
        frame = frame[sections == section]
    elif section != 0:
        raise UserError(f"--section {section} does not exist: {name} has no section column "
                        "(one section, number 0)")
    if frame.empty:
        raise UserError(f"--section {section} has no tiles in {name}")
    xy = to_numbers(frame[["x", "y"]], "positions table", name)
    if np.isnan(xy).any():
        raise UserError(f"the positions table {name} has a tile without x or y")
    return [(t, float(x), float(y)) for t, (x, y) in zip(frame["tile"], xy)]


def tile_size(text, tiles, mosaic_shape):
    """(width, height) of a tile: `--tile-size W,H`, else what the mosaic's size leaves beyond
    the farthest tile (stitch's canvas ends exactly at the last tile's edge)."""
    if text:
        try:
            w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise UserError(f"--tile-size must be two integers W,H (pixels), got {text!r}") from None
    else:
        w = mosaic_shape[0] - math.ceil(max(x for _, x, _ in tiles) - 1e-6)
        h = mosaic_shape[1] - math.ceil(max(y for _, _, y in tiles) - 1e-6)
    if w <= 0 or h <= 0:
        raise UserError(f"the tiles do not fit in the {mosaic_shape[0]}x{mosaic_shape[1]} mosaic: "
                        "is the positions table from this mosaic?")
    for name, x, y in tiles:
        if x < -1 or y < -1 or x + w > mosaic_shape[0] + 1 or y + h > mosaic_shape[1] + 1:
            raise UserError(f"tile {name} at x={x:g}, y={y:g} ({w}x{h} px) lies outside the "
                            f"{mosaic_shape[0]}x{mosaic_shape[1]} mosaic: is the positions table "
                            "from this mosaic?")
    return w, h


def overlaps(tiles, size):
    """(x0, y0, x1, y1) of the overlap of each pair of tiles that overlap."""
    w, h = size
    found = []
    for i, (_, xa, ya) in enumerate(tiles):
        for _, xb, yb in tiles[i + 1:]:
            x0, y0, x1, y1 = max(xa, xb), max(ya, yb), min(xa, xb) + w, min(ya, yb) + h
            if x1 > x0 and y1 > y0:
                found.append((x0, y0, x1, y1))
    return found


def outline_drawer(tiles, size, bins):
    """A callable drawing the seams (shaded) and tile outlines (coloured, named) on the axes,
    in picture pixels (mosaic pixels divided by the binning)."""
    from matplotlib.patches import Rectangle

    w, h = size
    bx, by = bins

    def draw(ax):
        for x0, y0, x1, y1 in overlaps(tiles, size):
            ax.add_patch(Rectangle((x0 / bx, y0 / by), (x1 - x0) / bx, (y1 - y0) / by,
                                   facecolor=SEAM_COLOUR, alpha=0.25, edgecolor="none"))
        for k, (name, x, y) in enumerate(tiles):
            colour = COLOURS[k % len(COLOURS)] / 255
            ax.add_patch(Rectangle((x / bx, y / by), w / bx, h / by, fill=False,
                                   edgecolor=colour, linewidth=1.5))
            ax.text((x + w / 2) / bx, (y + h / 2) / by, name, color=colour, fontsize=8,
                    ha="center", va="center")
    return draw


def tiles_view(source, path, positions, section, size_text, jobs, channel):
    """One section of a mosaic with its tiles' outlines and seams."""
    if not 0 <= section < source.shape[2]:
        raise UserError(f"--section {section} is outside the mosaic, which has "
                        f"{source.shape[2]} section(s), 0 to {source.shape[2] - 1}")
    tiles = read_positions(positions, section)
    size = tile_size(size_text, tiles, source.shape)
    voxel = voxel_nm(source)
    extent = (source.shape[0] * voxel[0], source.shape[1] * voxel[1])
    (rect,), _ = layout([extent], "row")
    bins = (max(1, math.ceil(source.shape[0] / rect[2])), max(1, math.ceil(source.shape[1] / rect[3])), 1)
    plane = project(source, (2,), "mean", bins, ((0, 0, section), source.shape[:2] + (section + 1,)),
                    jobs, channel, desc="reading the section")[2].T
    lo, hi = window([plane])
    panel = Panel(grey(plane, lo, hi), extent, f"section {section}: {len(tiles)} tiles of "
                  f"{size[0]}x{size[1]} px, overlaps shaded",
                  [outline_drawer(tiles, size, bins[:2])])
    caption = (f"tiles placed from {os.path.basename(positions)}. {describe(source, bins)}")
    render([panel], path, kind="row", caption=caption, unit_known=source.voxel_nm is not None)
