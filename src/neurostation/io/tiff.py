"""TIFF, ImageJ-TIFF and OME-TIFF: metadata (axes, voxel size with unit) and plane streaming."""

import contextlib
import logging
import os

import numpy as np
import tifffile

from ..errors import UserError
from ..units import convert, normalize_unit
from .outputs import staged_file

# TIFF ResolutionUnit: 2 = inch, 3 = centimetre (in nm); 1 = none.
_RESUNIT_NM = {2: 25.4e6, 3: 1e7}


class _Complaints(logging.Handler):
    """Collect what tifffile logs while parsing: it logs damage instead of raising."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def open_tiff(path, check=True):
    """Open a TIFF; a damaged or truncated file becomes a one-line UserError. `check=False`
    skips the look at every page's data offsets — for files already checked once (describe_tiff),
    so that reading a box does not parse all the stack's page headers again."""
    name = os.path.basename(path)
    logger = logging.getLogger("tifffile")
    complaints = _Complaints()
    logger.addHandler(complaints)
    propagate, logger.propagate = logger.propagate, False
    try:
        try:
            tif = tifffile.TiffFile(path)
            series = tif.series  # parsing the series is where truncation shows
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
            raise UserError(f"cannot read TIFF {name}: {exc}") from None
        with tif:
            size = os.path.getsize(path)
            for page in (p for s in series if check for p in s.pages if p is not None):
                ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size:
                    complaints.messages.append("pixel data runs past the end of the file")
            if complaints.messages:
                detail = complaints.messages[0].split("> ", 1)[-1]
                raise UserError(f"TIFF {name} is truncated or corrupt ({detail})")
            yield tif
    finally:
        logger.removeHandler(complaints)
        logger.propagate = propagate


def _ome_voxel_size(tif):
    pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
    pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
    sizes, units = [], []
    for ax in "XYZ":
        sizes.append(float(pixels.get(f"PhysicalSize{ax}", 1.0)))
        units.append(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
    if "PhysicalSizeX" not in pixels:
        return None, None
    unit = normalize_unit(units[0])
    if any(normalize_unit(u) != unit for u in units):
        raise UserError("OME-TIFF physical sizes use different units per axis; not supported")
    return tuple(sizes), unit


def _tag_resolution(page):
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    out = []
    for name in ("XResolution", "YResolution"):
        num, den = tags[name].value
        if not num:
            return None
        out.append(den / num)  # pixels per unit -> size per pixel
    return out


def _imagej_voxel_size(tif):
    meta = tif.imagej_metadata or {}
    xy = _tag_resolution(tif.pages[0])
    unit = meta.get("unit")
    if xy is None or not unit or unit in ("pixel", "pixels"):
        return None, None
    unit = normalize_unit(unit.replace("\\u00B5", "µ"))
    return (xy[0], xy[1], float(meta.get("spacing", 1.0))), unit


def _plain_voxel_size(tif):
    page = tif.pages[0]
    xy = _tag_resolution(page)
    resunit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 2
    if xy is None or resunit not in _RESUNIT_NM or xy == [1.0, 1.0]:
        return None, None
    nm = [v * _RESUNIT_NM[resunit] for v in xy]
    return (nm[0], nm[1], None), "nm"


def describe_tiff(path):
    """Axes, shape, dtype and voxel size (with unit and its source) of a TIFF's first series."""
    with open_tiff(path) as tif:
        if not tif.series:
            raise UserError(f"TIFF {os.path.basename(path)} holds no image")
        series = tif.series[0]
        if tif.is_ome:
            kind, (size, unit) = "ome-tiff", _ome_voxel_size(tif)
        elif tif.is_imagej:
            kind, (size, unit) = "imagej-tiff", _imagej_voxel_size(tif)
        else:
            kind, (size, unit) = "tiff", _plain_voxel_size(tif)
        return {
            "format": kind,
            "axes": series.axes,
            "shape": tuple(int(n) for n in series.shape),
            "dtype": np.dtype(series.dtype).name,
            "voxel_size": size,
            "voxel_unit": unit,
            "series": len(tif.series),
            "planes": max(len(series.pages), 1),
            # uncompressed pixels stored in one run: boxes can be read by memory-mapping
            "data_offset": series.dataoffset,
            "byteorder": tif.byteorder,
        }


def iter_tiff_blocks(path):
    """Yield the first series plane by plane (memory: one plane), failing clearly if truncated."""
    with open_tiff(path) as tif:
        series = tif.series[0]
        pages = series.pages if len(series.pages) > 1 else [None]
        for page in pages:
            try:
                data = series.asarray() if page is None else page.asarray()
            except Exception as exc:  # tifffile/imagecodecs raise many types on damaged data
                raise UserError(
                    f"cannot read the pixels of TIFF {os.path.basename(path)} "
                    f"(truncated or corrupt?): {exc}"
                ) from None
            yield np.asarray(data)


def resolution_keywords(size, unit):
    """tifffile keywords (resolution tags in cm) and metadata recording a voxel size
    (x, y[, z]) with its unit, so readers of our TIFFs get it back; empty without one."""
    if size is None:
        return {}, {}
    x_nm, y_nm = convert(size[:2], unit, "nm")
    keywords = {"resolution": (1e7 / x_nm, 1e7 / y_nm), "resolutionunit": "CENTIMETER"}
    return keywords, {"voxel_size": [v for v in size if v is not None], "voxel_unit": unit}


def write_ome_tiff(path, planes, shape_zyx, dtype, voxel_nm, channels=1):
    """Write z planes (YX, or YXS with channels) as an OME-TIFF with axes metadata and the voxel
    size in µm (none when `voxel_nm` is None); complete or absent (staged), BigTIFF when needed."""
    z, y, x = shape_zyx
    shape, samples, axes = (z, y, x), {}, "ZYX"
    if channels > 1:  # channels as samples of each pixel
        shape, samples, axes = shape + (channels,), {"planarconfig": "contig"}, "ZYXS"
    sizes = {}
    if voxel_nm is not None:
        um = convert(voxel_nm, "nm", "um")
        sizes = {**{f"PhysicalSize{a}": v for a, v in zip("XYZ", um)},
                 **{f"PhysicalSize{a}Unit": "µm" for a in "XYZ"}}
    bigtiff = x * y * z * channels * np.dtype(dtype).itemsize > 2**32 - 2**25
    with staged_file(path, ".tif") as tmp:
        tifffile.imwrite(tmp, planes, shape=shape, dtype=dtype, ome=True, photometric="minisblack",
                         bigtiff=bigtiff, metadata={"axes": axes, **sizes}, **samples)
