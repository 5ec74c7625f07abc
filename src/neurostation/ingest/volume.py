"""`neurostation ingest`: TIFF slices / stacks, OME-TIFF, zip of slices or NIfTI -> a
Neuroglancer precomputed volume with its whole resolution pyramid, written box by box.

Voxel size comes from the file's metadata unless --voxel-size/--voxel-unit supply it; it is
stored in nm. A NIfTI's affine goes into the completion record, which is written last.
"""

import json
import os
import shutil
import sys

import numpy as np

from ..chunks.pool import add_parallel_arguments, resolve_jobs
from ..errors import UserError
from ..io.precomputed import ENCODINGS, check_encoding, create_volume, to_url
from ..io.sources import open_source, workdir
from ..storage.scales import cumulative, plan_factors
from ..storage.write import write_pyramid
from ..units import UNIT_NM, convert, normalize_unit, parse_xyz

# Data types Neuroglancer precomputed holds.
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ingest", help="convert images to a multi-resolution Neuroglancer precomputed volume",
        description="Convert 2D TIFF slices (files, a folder or a zip), a multi-page TIFF, an "
        "OME-TIFF or a 3D NIfTI-1 into a Neuroglancer precomputed volume with its whole "
        "resolution pyramid (images averaged, labels by mode), readable by Neuroglancer, "
        "TensorStore and cloud-volume. Memory is bounded by one box of chunks, not the volume; "
        "an interrupted run resumes where it stopped when re-run with the same arguments.",
        epilog="example: neurostation ingest slices/*.tif -o ./volume --voxel-size 0.5,0.5,2 "
        "--voxel-unit um --jobs 4",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="TIFF slices (sorted naturally by name), a folder or zip of them, one "
                   "multi-page TIFF / OME-TIFF, or one 3D NIfTI-1")
    p.add_argument("-o", "--output", required=True,
                   help="output folder or URL (file://, s3://, gs://)")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="names of the inputs, used for sorting slices (Galaxy element identifiers)")
    p.add_argument("--voxel-size", help="X,Y,Z voxel size overriding the file's metadata")
    p.add_argument("--voxel-unit", default="nm", choices=sorted(UNIT_NM),
                   help="unit of --voxel-size (default nm)")
    p.add_argument("--layer-type", choices=("image", "segmentation"), default="image",
                   help="image (pyramid by averaging) or segmentation (labels, by mode)")
    p.add_argument("--chunk-size", help="X,Y,Z chunk size in voxels (default 64,64,64, or "
                   "128,128,64 for anisotropic voxels)")
    p.add_argument("--encoding", choices=ENCODINGS, default="raw",
                   help="chunk encoding: raw (default), jpeg (uint8 images, lossy), "
                   "compressed_segmentation (uint32/uint64 labels)")
    p.add_argument("--levels", type=int, help="number of downsampled scales (default: until "
                   "x and y fit in one chunk)")
    add_parallel_arguments(p)
    p.add_argument("--reference", help="also write a JSON reference {\"url\": ...} to the volume here")
    p.set_defaults(func=run)
    return p


def default_chunk(voxel_nm):
    """64³ chunks, or 128 x 128 x 64 when z is at least twice as coarse as x or y."""
    anisotropic = voxel_nm[2] >= 2 * min(voxel_nm[0], voxel_nm[1])
    return (128, 128, 64) if anisotropic else (64, 64, 64)


def check_storable(dtype, channels, options):
    """Refuse data a precomputed volume with these options (--encoding, layer type) cannot hold."""
    if np.dtype(dtype).name not in DTYPES:
        raise UserError(f"input data type {np.dtype(dtype).name} cannot be stored; precomputed "
                        f"volumes take {', '.join(DTYPES)}")
    check_encoding(options.encoding, dtype, channels, options.layer_type)


def plan_volume(shape, voxel_nm, options):
    """(chunk, per-scale factors) of a volume of `shape` from --chunk-size and --levels."""
    chunk = (tuple(int(v) for v in parse_xyz(options.chunk_size, "--chunk-size"))
             if options.chunk_size else default_chunk(voxel_nm))
    if options.levels is not None and options.levels < 0:
        raise UserError(f"--levels must be 0 or more, got {options.levels}")
    chunk = tuple(min(c, n) for c, n in zip(chunk, shape))
    return chunk, plan_factors(shape, voxel_nm, chunk, options.levels)


def write_volume(source, url, voxel_nm, options, jobs, params, record, budget=None):
    """Create the volume for `source` at `url` (chunking from --chunk-size or the default,
    --levels scales, --encoding) and write it with its pyramid, completion record last.
    `options` holds chunk_size, encoding, levels and layer_type as the commands parse them."""
    dtype = np.dtype(source.dtype)
    check_storable(dtype, source.channels, options)
    chunk, factors = plan_volume(source.shape, voxel_nm, options)
    create_volume(url, source.shape, dtype, voxel_nm, num_channels=source.channels,
                  layer_type=options.layer_type, encoding=options.encoding, chunk_size=chunk,
                  factors=cumulative(factors)[1:])
    params = {**params, "chunk": chunk, "factors": factors, "layer_type": options.layer_type,
              "encoding": options.encoding, "voxel_nm": voxel_nm}
    write_pyramid(source, url, source.shape, dtype, source.channels, chunk, factors,
                  options.layer_type, jobs, params, record, budget=budget)


def write_reference(path, url):
    """A small JSON reference {"url": ...} to a volume kept outside Galaxy."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"url": url}, handle)
        handle.write("\n")


def run(args):
    jobs = resolve_jobs(args.jobs)
    url = to_url(args.output)
    tmp = workdir()
    try:
        source = open_source(args.inputs, args.names, tmp)
        if args.voxel_size:
            size, unit = parse_xyz(args.voxel_size), args.voxel_unit
        elif source.voxel_size is None or None in source.voxel_size:
            print("warning: the input carries no voxel size; assuming 1,1,1 nm "
                  "(give --voxel-size and --voxel-unit)", file=sys.stderr)
            size, unit = (1.0, 1.0, 1.0), "nm"
        else:
            size, unit = source.voxel_size, source.voxel_unit
        voxel_nm = convert(size, normalize_unit(unit), "nm")
        record = {"command": "ingest", "sources": getattr(source, "names", [getattr(source, "name", "")]),
                  "voxel_size": list(size), "voxel_unit": normalize_unit(unit), **source.extra}
        params = {"inputs": [os.path.abspath(p) for p in args.inputs], "names": args.names}
        write_volume(source, url, voxel_nm, args, jobs, params, record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.reference:
        write_reference(args.reference, url)
