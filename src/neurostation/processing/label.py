"""`neurostation label`: 3D connected components of a mask or thresholded volume, chunk-wise,
with a size filter and border removal -> a precomputed segmentation (with its label pyramid)
or a TIFF (axes ZYX) for small data. The algorithm is in components.py.
"""

import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np

from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..ingest.volume import DTYPES, check_storable, plan_volume, write_reference, write_volume
from ..io.outputs import add_volume_options, check_tiff_options, output_format
from ..io.precomputed import LABEL_ENCODING, SEGMENTATION_ENCODINGS, check_writable, to_url
from ..io.tiff import write_ome_tiff
from ..storage.write import first_box_size
from ..units import (NUMBER, UNIT_NM, convert, min_voxels, normalize_unit, parse_min_size,
                     parse_xyz)
from ..visualize.sources import check_channel, open_volume_source
from .components import REACH, Contacts, FirstPass, Foreground, Grid, LabelSource, Objects
from .split import SplitSource, split_objects

# --split-h: a number of voxel edges, or a length with a unit (1.5um, 200 nm).
_LENGTH = re.compile(NUMBER + r"([a-zµμ]+)?\s*")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "label", help="label the connected objects of a mask or thresholded volume",
        description="3D connected components of a volume larger than memory: foreground is every "
        "non-zero voxel, or with --threshold every voxel above it. Boxes are labelled on their "
        "own and joined across their faces, edges and corners, so the objects are exactly those "
        "of cc3d.connected_components on the whole volume; labels are 1..N in the order of each "
        "object's first voxel (x fastest, then y, then z), which is cc3d's own numbering. "
        "Optionally drops objects smaller than --min-size or touching the volume's border "
        "(then renumbered 1..N). Writes a precomputed segmentation with its label pyramid (a "
        "folder or URL; compressed_segmentation chunks, Neuroglancer's encoding for labels, "
        "some 40 times smaller than raw) or a TIFF (axes ZYX) for small data. Memory: one box "
        "plus a table "
        "entry per object piece, never the volume.",
        epilog="example: neurostation label mask.ome.tif -o labels --connectivity 6 "
        "--min-size 10um3 --remove-border --jobs 4",
    )
    p.add_argument("input", help="mask or image: TIFF/OME-TIFF, NIfTI, precomputed folder, URL "
                   "or JSON reference")
    p.add_argument("-o", "--output", required=True,
                   help="labels to write: a .tif/.tiff file, or a precomputed volume (a folder, "
                   "or a file://, s3:// or gs:// URL)")
    p.add_argument("--format", choices=("tiff", "precomputed"),
                   help="output kind (default: tiff for a name ending in .tif or .tiff, else "
                   "precomputed)")
    p.add_argument("--connectivity", type=int, choices=sorted(REACH), default=26,
                   help="neighbours of a voxel: 6 (faces), 18 (faces, edges) or 26 (faces, "
                   "edges, corners; default)")
    p.add_argument("--threshold", type=float, metavar="V",
                   help="foreground is value > V (default: every non-zero voxel)")
    p.add_argument("--channel", type=int, default=0, help="channel to label (default 0)")
    p.add_argument("--min-size", metavar="SIZE",
                   help="drop objects smaller than SIZE: voxels (e.g. 50) or a volume with a "
                   "cubed unit nm3, um3 or mm3 (e.g. 10um3)")
    p.add_argument("--remove-border", action="store_true",
                   help="drop objects touching the border of the volume (axes of one voxel "
                   "excepted, so 2D images keep objects touching only their z faces)")
    p.add_argument("--split", action="store_true",
                   help="split touching objects by a watershed of each object's distance "
                   "transform from its h-maxima, one object at a time inside its bounding box "
                   "(exact by construction; memory: the largest object's bounding box, some "
                   "50 bytes a voxel); after the size filter and border removal")
    p.add_argument("--split-h", metavar="H",
                   help="--split: a seed is a maximum of the distance to the background at least "
                   "H above the saddle to any higher one: a length with a unit (e.g. 0.5um, "
                   "300nm) or a number of the smallest voxel edge (default 1)")
    p.add_argument("--voxel-size", metavar="X,Y,Z",
                   help="voxel size overriding the input's (needed for --min-size in a unit "
                   "when the input records none)")
    p.add_argument("--voxel-unit", default="nm", choices=sorted(UNIT_NM),
                   help="unit of --voxel-size (default nm)")
    add_volume_options(p, SEGMENTATION_ENCODINGS, LABEL_ENCODING)
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="segmentation")
    return p


def parse_split_h(args):
    """--split-h -> ('voxels', n) or ('nm', length); refused without --split."""
    if args.split_h is None:
        return "voxels", 1.0
    if not args.split:
        raise UserError("--split-h applies with --split")
    match = _LENGTH.fullmatch(str(args.split_h))
    if not match or float(match.group(1)) <= 0:
        raise UserError("--split-h must be a positive length (e.g. 0.5um, 300nm) or number of "
                        f"voxel edges, got {args.split_h!r}")
    value, unit = float(match.group(1)), match.group(2)
    if unit is None:
        return "voxels", value
    try:
        return "nm", value * UNIT_NM[normalize_unit(unit)]
    except UserError:
        raise UserError(f"--split-h unit must be nm, um or mm, got {args.split_h!r}") from None


def split_h_nm(height, voxel_nm):
    """The h of the h-maxima in nm: a number of voxel edges is of the smallest edge."""
    kind, value = height
    return value * min(voxel_nm) if kind == "voxels" else value


def voxel_size(args, source):
    """(voxel size in nm, known?): --voxel-size, else the input's, else 1 nm."""
    if args.voxel_size:
        return convert(parse_xyz(args.voxel_size), args.voxel_unit, "nm"), True
    if source.voxel_nm is not None:
        return tuple(source.voxel_nm), True
    return (1.0, 1.0, 1.0), False


def box_size(shape, voxel_nm, args):
    """The labelling grid: the pyramid writer's boxes, so each box is labelled once per pass."""
    chunk, factors = plan_volume(shape, voxel_nm, args)
    return first_box_size(chunk, factors, np.uint32, 1)


def check_foreground(pieces, args, name, total):
    """Refuse an input with no foreground, or a threshold outside the data's range."""
    foreground = sum(int(p.counts.sum()) for p in pieces)
    low = min(p.span[0] for p in pieces)
    high = max(p.span[1] for p in pieces)
    if args.threshold is None:
        if not foreground:
            raise UserError(f"{name} is empty: no non-zero voxel to label")
        return
    if not foreground or foreground == total:
        side = "at or above its maximum" if not foreground else "below its minimum"
        raise UserError(f"--threshold {args.threshold:g} is {side}: {name}'s values span "
                        f"{low:g} to {high:g}, so {'no' if not foreground else 'every'} voxel "
                        "would be foreground")


def write_tiff(path, labels, voxel_nm, jobs):
    """Write the labels as a TIFF (axes ZYX, voxel size in µm), one z-slab of boxes at a time."""
    grid = labels.grid
    (sx, sy, sz), depth = grid.shape, grid.box[2]

    def planes():
        for z0 in range(0, sz, depth):
            slab = np.zeros((min(depth, sz - z0), sy, sx), labels.dtype)
            boxes = [b for b in grid.boxes if b.start[2] == z0]
            for box, data in run_tasks(labels.boxed, boxes, jobs=jobs, desc="writing labels"):
                (x0, y0, _), (x1, y1, _) = box.start, box.stop
                slab[:, y0:y1, x0:x1] = data[..., 0].transpose(2, 1, 0)
            yield from slab

    write_ome_tiff(path, planes(), (sz, sy, sx), labels.dtype, voxel_nm)


def run(args):
    kind = output_format(args)
    check_tiff_options(args, LABEL_ENCODING)
    size = parse_min_size(args.min_size) if args.min_size else None
    height = parse_split_h(args)
    jobs = resolve_jobs(args.jobs)
    url = to_url(args.output) if kind == "precomputed" else None
    work = tempfile.mkdtemp(prefix="neurostation-label-")
    try:
        source = open_volume_source(args.input, work, mip=args.mip)
        check_channel(source, args.channel)
        if np.dtype(source.dtype).name not in DTYPES + ("float64", "bool"):
            raise UserError(f"{source.name} has data type {np.dtype(source.dtype).name}, which "
                            "cannot be labelled")
        voxel_nm, known = voxel_size(args, source)
        smallest = min_voxels(size, voxel_nm, known)
        if not known:
            print("warning: the input carries no voxel size; assuming 1,1,1 nm (give "
                  "--voxel-size and --voxel-unit)", file=sys.stderr)
        if kind == "precomputed":
            check_storable(np.uint32, 1, args)
            plan_volume(source.shape, voxel_nm, args)  # --chunk-size, --levels checked first
        grid = Grid(source.shape, box_size(source.shape, voxel_nm, args))
        foreground = Foreground(source, args.channel, args.threshold)
        first_pass = FirstPass(foreground, grid, args.connectivity, work, bounds=args.split)
        pieces = list(run_tasks(first_pass, grid.boxes, jobs=jobs, desc="labelling boxes"))
        check_foreground(pieces, args, source.name, math.prod(grid.shape))
        if kind == "precomputed":
            check_writable(url)  # after the input's checks: a refused input leaves no folder
        contacts = [found for result in run_tasks(Contacts(grid, args.connectivity, work),
                                                  grid.boxes, jobs=jobs, desc="joining boxes")
                    for found in result]
        objects = Objects(pieces, contacts, smallest, args.remove_border)
        table = f"{work}/labels.npy"
        np.save(table, objects.remap)
        labels = LabelSource(foreground, grid, args.connectivity, objects.offsets, table,
                             objects.dtype)
        count = objects.count
        if args.split:
            folder = os.path.join(work, "split")
            os.mkdir(folder)
            pieces = split_objects(objects, foreground, source.shape, voxel_nm,
                                   split_h_nm(height, voxel_nm), args.connectivity, folder, jobs)
            labels, count = SplitSource(labels, pieces), pieces.count
        if kind == "tiff":
            write_tiff(args.output, labels, voxel_nm, jobs)
        else:
            params = {"input": str(args.input), "channel": args.channel,
                      "threshold": args.threshold, "connectivity": args.connectivity,
                      "min_voxels": smallest, "remove_border": args.remove_border,
                      "box": grid.box, "split": args.split}
            record = {"command": "label", "sources": [source.name], "objects": count,
                      "connectivity": args.connectivity, "threshold": args.threshold,
                      "min_voxels": smallest, "remove_border": args.remove_border}
            if args.split:
                record.update(split=True, split_h_nm=split_h_nm(height, voxel_nm),
                              objects_before_split=objects.count)
            write_volume(labels, url, voxel_nm, args, jobs, params, record)
            if args.reference:
                write_reference(args.reference, url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dropped = objects.found - objects.count
    print(f"labelled {objects.count} objects ({args.connectivity}-connected)"
          + (f"; dropped {dropped} by size or border" if dropped else "")
          + (f"; split into {count}" if args.split else ""), file=sys.stderr)
