"""The orthogonal QC views of a volume — projections, slices through a voxel, checkerboard of
two volumes — as xy, xz and yz panels at one physical scale, binned to the picture's pixels."""

import math

import numpy as np

from ..errors import UserError
from .checkerboard import checker_panels
from .contours import overlay
from .figure import Panel, format_lengths, grey, layout, render, window
from .project import project

AXIS_NAMES = "xyz"


def voxel_nm(source):
    """The source's voxel size in nm, or 1 nm per voxel when it records none."""
    return source.voxel_nm or (1.0, 1.0, 1.0)


def ortho_sizes(shape, voxel):
    """Physical (width, height) of the xy, xz and yz panels."""
    x, y, z = (n * v for n, v in zip(shape, voxel))
    return [(x, y), (x, z), (z, y)]


def ortho_bins(shape, voxel):
    """Voxels per picture pixel along x, y, z, so each panel is at most its size on screen."""
    rects, _ = layout(ortho_sizes(shape, voxel), "ortho")
    (_, _, xw, yh), (_, _, _, zh), _ = rects
    return tuple(max(1, math.ceil(n / px)) for n, px in zip(shape, (xw, yh, zh)))


def oriented(planes):
    """{axis: (first, second) plane array} -> [xy, xz, yz] arrays with rows y, z, y."""
    return [planes[2].T, planes[1].T, planes[0]]


def parse_position(text, shape):
    """`x,y,z` voxel indices inside the volume (default: its centre voxel)."""
    if text is None:
        return tuple(n // 2 for n in shape)
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"--position must be three integers x,y,z (voxels), got {text!r}")
    if any(not 0 <= v < n for v, n in zip(values, shape)):
        raise UserError(f"--position {text} is outside the volume, which spans voxels 0 to "
                        f"{','.join(str(n - 1) for n in shape)}")
    return values


def slice_planes(source, position, bins, jobs, channel=0, method="mean"):
    """{axis: plane} of the planes through `position` (each a region one voxel thick)."""
    planes = {}
    for axis in (2, 1, 0):
        start = tuple(p if a == axis else 0 for a, p in enumerate(position))
        stop = tuple(p + 1 if a == axis else n for a, (p, n) in enumerate(zip(position, source.shape)))
        planes.update(project(source, (axis,), method, bins, (start, stop), jobs, channel,
                              desc=f"reading the {AXIS_NAMES.replace(AXIS_NAMES[axis], '')} slice"))
    return planes


def check_same_grid(a, b, role):
    """Refuse a second volume whose shape or voxel size differs from the first's."""
    if a.shape != b.shape:
        raise UserError(f"{b.name} is {'x'.join(map(str, b.shape))} voxels but {a.name} is "
                        f"{'x'.join(map(str, a.shape))}: the {role} must be on the same grid")
    va, vb = a.voxel_nm, b.voxel_nm
    if (va is None) != (vb is None) or (va and not np.allclose(va, vb, rtol=1e-3)):
        def text(v):
            return "unknown" if v is None else format_lengths(v)
        raise UserError(f"voxel sizes differ: {a.name} has {text(va)}, {b.name} has {text(vb)}; "
                        f"the {role} must be on the same grid (resample one onto the other first)")


def describe(source, bins):
    """Caption facts: name, size, voxel size, and the binning when the picture is coarser."""
    text = f"{source.name}: {' x '.join(map(str, source.shape))} voxels (x, y, z)"
    if source.voxel_nm:
        text += f", voxel {format_lengths(source.voxel_nm)}"
    else:
        text += ", voxel size unknown (scale bar in voxels)"
    if bins != (1, 1, 1):
        text += f"; one pixel shows {' x '.join(map(str, bins))} voxels (x, y, z)"
    return text


def labelled_panels(planes, label_planes, sizes, titles):
    """Grey panels in one display window, with label contours when labels are given."""
    images = oriented(planes)
    labels = oriented(label_planes) if label_planes else [None] * 3
    lo, hi = window(images)
    return [Panel(overlay(grey(image, lo, hi), lab), size, title)
            for image, lab, size, title in zip(images, labels, sizes, titles)]


def projection_view(source, path, method, labels, jobs, channel):
    """Max or mean projections along z, y and x, optionally with label contours."""
    voxel = voxel_nm(source)
    bins = ortho_bins(source.shape, voxel)
    planes = project(source, method=method, bins=bins, jobs=jobs, channel=channel)
    label_planes = project(labels, method="max", bins=bins, jobs=jobs, desc="projecting labels") \
        if labels else None
    titles = [f"{p} ({method} over {a})" for p, a in (("xy", "z"), ("xz", "y"), ("yz", "x"))]
    caption = f"{method} intensity projections. {describe(source, bins)}"
    if labels:
        caption += f". Contours: {labels.name} (largest label along each ray)"
    render(labelled_panels(planes, label_planes, ortho_sizes(source.shape, voxel), titles), path,
           caption=caption, unit_known=source.voxel_nm is not None)


def slices_view(source, path, position, labels, jobs, channel):
    """The three orthogonal slices through one voxel, optionally with label contours."""
    voxel = voxel_nm(source)
    bins = ortho_bins(source.shape, voxel)
    x, y, z = parse_position(position, source.shape)
    planes = slice_planes(source, (x, y, z), bins, jobs, channel)
    label_planes = slice_planes(labels, (x, y, z), bins, jobs, method="max") if labels else None
    titles = [f"xy at z={z}", f"xz at y={y}", f"yz at x={x}"]
    caption = f"orthogonal slices through voxel x={x}, y={y}, z={z}. {describe(source, bins)}"
    if labels:
        caption += f". Contours: {labels.name}"
    render(labelled_panels(planes, label_planes, ortho_sizes(source.shape, voxel), titles), path,
           caption=caption, unit_known=source.voxel_nm is not None)


def checkerboard_view(first, second, path, position, squares, jobs, channel):
    """Slices of two volumes on one grid through one voxel, in alternating squares."""
    check_same_grid(first, second, "two volumes of a checkerboard")
    voxel = voxel_nm(first)
    bins = ortho_bins(first.shape, voxel)
    x, y, z = parse_position(position, first.shape)
    planes = [oriented(slice_planes(s, (x, y, z), bins, jobs, channel)) for s in (first, second)]
    titles = [f"xy at z={z}", f"xz at y={y}", f"yz at x={x}"]
    panels = checker_panels(planes[0], planes[1], ortho_sizes(first.shape, voxel), titles, squares)
    caption = (f"checkerboard, {squares} squares along the longer side: {first.name} in the "
               f"top-left square, {second.name} in the next. {describe(first, bins)}")
    render(panels, path, caption=caption, unit_known=first.voxel_nm is not None)
