"""`neurostation ingest`: a TIFF / OME-TIFF / NIfTI volume -> Neuroglancer precomputed, streamed.

Planes are read and written one chunk-row of z at a time, so memory is bounded by
chunk_z planes, never by the volume. Voxel size comes from the file's metadata unless
--voxel-size/--voxel-unit supply it; it is stored in nm, and the source's affine (NIfTI)
goes into the completion record, which is written last.
"""

import os
import sys

import numpy as np

from ..errors import UserError
from ..io.detect import detect_format
from ..io.nifti import describe_nifti, iter_nifti_blocks
from ..io.precomputed import create_volume, write_record
from ..io.tiff import describe_tiff, iter_tiff_blocks
from ..progress import progress
from ..units import UNIT_NM, convert, normalize_unit, parse_xyz

# Data types Neuroglancer precomputed holds; float64 is stored as float32 (with a warning).
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ingest", help="convert an image stack to a Neuroglancer precomputed volume",
        description="Convert a multi-page TIFF, OME-TIFF or 3D NIfTI-1 into a Neuroglancer "
        "precomputed volume (uncompressed chunks, readable by Neuroglancer and TensorStore), "
        "streaming one chunk-row of z-planes at a time.",
        epilog="example: neurostation ingest stack.ome.tif -o ./volume --voxel-size 0.5,0.5,2 "
        "--voxel-unit um",
    )
    p.add_argument("input", help="TIFF, OME-TIFF or NIfTI-1 file")
    p.add_argument("-o", "--output", required=True, help="output folder or URL (file://, s3://, gs://)")
    p.add_argument("--voxel-size", help="X,Y,Z voxel size overriding the file's metadata")
    p.add_argument("--voxel-unit", default="nm", choices=sorted(UNIT_NM),
                   help="unit of --voxel-size (default nm)")
    p.add_argument("--layer-type", choices=("image", "segmentation"), default="image")
    p.add_argument("--chunk-size", default="64,64,64", help="X,Y,Z chunk size in voxels (default 64,64,64)")
    p.set_defaults(func=run)
    return p


def _tiff_layout(facts, name):
    axes = facts["axes"].upper()
    if axes not in ("YX", "ZYX", "YXS", "ZYXS", "QYX", "IYX"):
        raise UserError(f"{name} has axes {axes}; ingest takes z-stacks (ZYX, optionally RGB samples)")
    shape = dict(zip(axes.replace("Q", "Z").replace("I", "Z"), facts["shape"]))
    return (shape["X"], shape["Y"], shape.get("Z", 1)), shape.get("S", 1)


def _source(path, name):
    """(shape_xyz, channels, dtype, voxel_size, unit, blocks-as-(x,y,z,c), extra record facts)."""
    kind = detect_format(path)
    if kind == "tiff":
        facts = describe_tiff(path)
        shape, channels = _tiff_layout(facts, name)
        tail = 3 if channels > 1 else 2  # trailing (y, x[, s]) axes of every block

        def blocks():
            for block in iter_tiff_blocks(path):
                zyxc = block.reshape((-1,) + block.shape[-tail:] + ((1,) if channels == 1 else ()))
                yield np.transpose(zyxc, (2, 1, 0, 3))  # (z, y, x, c) -> (x, y, z, c)

        return shape, channels, facts["dtype"], facts["voxel_size"], facts["voxel_unit"], blocks(), {}
    if kind == "nifti":
        facts = describe_nifti(path)
        if len(facts["shape"]) > 3 and any(n > 1 for n in facts["shape"][3:]):
            raise UserError(f"{name} is a 4D NIfTI ({facts['shape']}); ingest takes 3D volumes")
        shape = tuple(facts["shape"][:3]) + (1,) * (3 - len(facts["shape"][:3]))
        blocks = (b.reshape(b.shape[:3] + (1,)) for b in iter_nifti_blocks(path, slab=1))
        extra = {"source_affine": facts["affine"], "source_unit": facts["voxel_unit"]}
        return shape, 1, facts["dtype"], facts["voxel_size"], facts["voxel_unit"], blocks, extra
    raise UserError(f"{name} is already a precomputed volume; use it directly")


def run(args):
    name = os.path.basename(args.input)
    chunk = tuple(int(v) for v in parse_xyz(args.chunk_size, "--chunk-size"))
    shape, channels, dtype, size, unit, blocks, extra = _source(args.input, name)
    if args.voxel_size:
        size, unit = parse_xyz(args.voxel_size), args.voxel_unit
    elif size is None or size[2] is None:
        print(f"warning: {name} carries no voxel size; assuming 1,1,1 nm (give --voxel-size)",
              file=sys.stderr)
        size, unit = (1.0, 1.0, 1.0), "nm"
    if np.dtype(dtype).name == "float64":
        print(f"warning: {name} is float64; storing float32", file=sys.stderr)
        dtype, blocks = "float32", (b.astype(np.float32) for b in blocks)
    if np.dtype(dtype).name not in DTYPES:
        raise UserError(f"{name} has dtype {dtype}; precomputed volumes take {', '.join(DTYPES)}")
    size_nm = convert(size, normalize_unit(unit), "nm")
    vol = create_volume(args.output, shape, dtype, size_nm, num_channels=channels,
                        layer_type=args.layer_type, chunk_size=chunk)
    # Buffer one chunk-row of z-planes, then write it chunk-aligned.
    buffer, z0 = [], 0
    for block in progress(blocks, total=shape[2], desc="writing planes"):
        buffer.append(block)
        if sum(b.shape[2] for b in buffer) >= chunk[2]:
            slab = np.concatenate(buffer, axis=2)
            vol[:, :, z0:z0 + slab.shape[2]] = slab
            z0 += slab.shape[2]
            buffer = []
    if buffer:
        slab = np.concatenate(buffer, axis=2)
        vol[:, :, z0:z0 + slab.shape[2]] = slab
        z0 += slab.shape[2]
    if z0 != shape[2]:
        raise UserError(f"{name}: expected {shape[2]} planes, read {z0}")
    write_record(args.output, command="ingest", source=name, voxel_size=list(size),
                 voxel_unit=normalize_unit(unit), **extra)
