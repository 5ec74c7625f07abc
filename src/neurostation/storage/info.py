"""`neurostation info`: describe an image or volume (shape, axes, dtype, voxel size, range)."""

import json
import os
import sys

import numpy as np

from ..io.detect import detect_format, read_reference
from ..io.nifti import describe_nifti, iter_nifti_blocks
from ..io.precomputed import describe_precomputed, iter_volume_blocks
from ..io.tiff import describe_tiff, iter_tiff_blocks
from ..progress import progress
from ..stats import RunningStats

# Axis letters that count as channels (tifffile uses S for RGB samples).
_CHANNEL_AXES = "CS"
# z-planes read at once when streaming NIfTI and precomputed values.
SLAB = 16
# Value range of a precomputed volume: from the finest scale with at most this many voxels.
STATS_MAX_VOXELS = 1 << 28


def add_parser(subparsers):
    p = subparsers.add_parser(
        "info", help="describe an image or volume",
        description="Report shape, axes, dtype, voxel size with unit and value range of a TIFF, "
        "OME-TIFF, NIfTI-1 or Neuroglancer precomputed volume (folder, URL or JSON reference); "
        "for NIfTI also the affine and TR. Sizes are named by axis (x, y, z, c, t).",
        epilog="example: neurostation info stack.ome.tif --format json -o stack.json",
    )
    p.add_argument("input", help="image file, precomputed folder, volume URL or JSON reference")
    p.add_argument("--name", help="name to report for the input (default: its file name)")
    p.add_argument("--format", choices=("tabular", "json"), default="tabular",
                   help="tabular: two columns property/value with a header (default); json")
    p.add_argument("--no-stats", action="store_true",
                   help="skip the value range (which reads every voxel, streamed)")
    p.add_argument("-o", "--output", help="write here instead of standard output")
    p.set_defaults(func=run)
    return p


def _sizes(axes, shape):
    sizes = {"x": 1, "y": 1, "z": 1, "c": 1, "t": 1}
    for ax, n in zip(axes.upper(), shape):
        key = "c" if ax in _CHANNEL_AXES else ax.lower()
        if key in sizes:
            sizes[key] *= int(n)
    return sizes


def describe(path, stats=True):
    """A dict describing the input; the value range is streamed block by block."""
    kind = detect_format(path)
    if kind == "reference":
        path, kind = read_reference(path), "precomputed"
    if kind == "tiff":
        facts = describe_tiff(path)
        total, blocks = facts["planes"], lambda: iter_tiff_blocks(path)
    elif kind == "nifti":
        facts = describe_nifti(path)
        total, blocks = -(-facts["shape"][2] // SLAB) if len(facts["shape"]) > 2 else 1, \
            lambda: iter_nifti_blocks(path, SLAB)
    else:
        facts = describe_precomputed(path)
        scale = next((i for i, s in enumerate(facts["scales"])
                      if np.prod(s["size"], dtype=np.int64) <= STATS_MAX_VOXELS),
                     len(facts["scales"]) - 1)
        facts["stats_scale"] = scale
        total = -(-facts["scales"][scale]["size"][2] // SLAB)
        blocks = lambda: iter_volume_blocks(path, scale, SLAB)  # noqa: E731
    facts.update({f"size_{k}": v for k, v in _sizes(facts["axes"], facts["shape"]).items()})
    if stats:
        acc = RunningStats()
        for block in progress(blocks(), total=total, desc="reading values"):
            acc.add(block)
        facts.update(acc.as_dict())
    return facts


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def to_rows(facts):
    """(property, value) rows in a fixed, documented order."""
    rows = [("name", facts["name"]), ("format", facts["format"]), ("axes", facts["axes"])]
    rows += [(f"size_{k}", facts[f"size_{k}"]) for k in "xyzct"]
    rows.append(("dtype", facts["dtype"]))
    size = facts.get("voxel_size") or (None, None, None)
    rows += [(f"voxel_size_{k}", v) for k, v in zip("xyz", size)]
    rows.append(("voxel_unit", facts.get("voxel_unit") or "unknown"))
    for key in ("min", "max", "mean", "stats_scale", "tr_s", "layer_type", "complete"):
        if facts.get(key) is not None:
            rows.append((key, facts[key]))
    for i, row in enumerate(facts.get("affine") or []):
        rows.append((f"affine_row{i}", row))
    for s_i, scale in enumerate(facts.get("scales") or []):
        rows.append((f"scale{s_i}", f"key={scale['key']} resolution={_fmt(scale['resolution'])} "
                                    f"size={_fmt(scale['size'])} chunk={_fmt(scale['chunk_size'])} "
                                    f"encoding={scale['encoding']}"))
    return rows


def run(args):
    facts = describe(args.input, stats=not args.no_stats)
    facts["name"] = args.name or os.path.basename(os.path.normpath(args.input))
    if args.format == "json":
        text = json.dumps(facts, indent=2, default=str) + "\n"
    else:
        text = "property\tvalue\n" + "".join(f"{k}\t{_fmt(v)}\n" for k, v in to_rows(facts))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
