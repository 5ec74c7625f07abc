"""`neurostation cutout`: any region at any scale of a volume -> OME-TIFF or NIfTI.

Only the chunks the box touches are read. NIfTI output gets the affine of the region: the
source NIfTI's affine when the volume came from one (kept in its record), otherwise the
voxel size in mm with the origin at the region's first voxel centre (Neuroglancer counts
from voxel corners, NIfTI from centres: the half-voxel shift is applied here).
"""

import os

import nibabel as nib
import numpy as np
import tifffile

from ..errors import UserError
from ..io.precomputed import open_complete, read_record, resolve_volume
from ..units import convert


def add_parser(subparsers):
    p = subparsers.add_parser(
        "cutout", help="extract a region of a volume to TIFF or NIfTI",
        description="Extract the box [x0,x1) x [y0,y1) x [z0,z1) (voxels of the chosen scale) of "
        "a precomputed volume (folder, URL or JSON reference) into an OME-TIFF (axes ZYX[C], "
        "physical voxel size) or a NIfTI-1 (.nii/.nii.gz, with the region's affine). Reads only "
        "the chunks the box touches.",
        epilog="example: neurostation cutout ./volume --bbox 0,0,10,512,512,20 --mip 1 -o region.ome.tif",
    )
    p.add_argument("volume", help="precomputed folder, volume URL or JSON reference")
    p.add_argument("--bbox", help="x0,y0,z0,x1,y1,z1 in voxels of the scale (default: all of it)")
    p.add_argument("--mip", type=int, default=0, help="scale index, 0 = full resolution (default)")
    p.add_argument("--format", choices=("tiff", "nifti", "nifti.gz"),
                   help="output format (default: from the file name: .nii, .nii.gz, else tiff)")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.set_defaults(func=run)
    return p


def parse_bbox(text, size):
    """x0,y0,z0,x1,y1,z1 -> (start, stop), checked against the scale's size."""
    if text is None:
        return (0, 0, 0), tuple(size)
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise UserError(f"--bbox must be six integers x0,y0,z0,x1,y1,z1, got {text!r}")
    start, stop = tuple(values[:3]), tuple(values[3:])
    if any(a < 0 or b > n or a >= b for a, b, n in zip(start, stop, size)):
        raise UserError(f"--bbox {text} is empty or outside the volume, which spans "
                        f"0,0,0 to {','.join(map(str, size))} at this scale")
    return start, stop


def region_affine(record, resolution_nm, factor, start):
    """Affine of a region whose first voxel is `start` at a scale `factor` times coarser."""
    if record and record.get("source_affine"):
        index = np.diag([float(f) for f in factor] + [1.0])
        # the centre of voxel i at this scale is mip-0 index i*f + (f-1)/2
        index[:3, 3] = [s * f + (f - 1) / 2 for s, f in zip(start, factor)]
        return np.asarray(record["source_affine"], dtype=float) @ index
    size_mm = convert(resolution_nm, "nm", "mm")
    affine = np.diag(list(size_mm) + [1.0])
    affine[:3, 3] = [(s + 0.5) * r for s, r in zip(start, size_mm)]
    return affine


def run(args):
    vol = open_complete(args.volume, args.mip)
    size = [int(n) for n in vol.info["scales"][args.mip]["size"]]
    start, stop = parse_bbox(args.bbox, size)
    fmt = args.format or ("nifti.gz" if args.output.endswith(".nii.gz") else
                          "nifti" if args.output.endswith(".nii") else "tiff")
    data = np.asarray(vol[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]])  # x, y, z, c
    resolution = [float(r) for r in vol.info["scales"][args.mip]["resolution"]]
    # Written under a temporary name and renamed: never a partial output under the final name.
    tmp = args.output + ".part" + {"nifti": ".nii", "nifti.gz": ".nii.gz", "tiff": ".tif"}[fmt]
    try:
        if fmt.startswith("nifti"):
            if data.shape[3] != 1:
                raise UserError("NIfTI output takes one channel; this volume has "
                                f"{data.shape[3]}: use --format tiff")
            base = [float(r) for r in vol.info["scales"][0]["resolution"]]
            factor = [round(r / b) for r, b in zip(resolution, base)]
            affine = region_affine(read_record(resolve_volume(args.volume)), resolution, factor, start)
            img = nib.Nifti1Image(data[..., 0], affine)
            img.header.set_xyzt_units("mm")
            nib.save(img, tmp)
        else:
            czyx = np.transpose(data, (3, 2, 1, 0))
            axes = "CZYX"
            if czyx.shape[0] == 1:
                czyx, axes = czyx[0], "ZYX"
            size_um = convert(resolution, "nm", "um")
            # minisblack: otherwise tifffile takes a last axis of 3 or 4 for RGB(A) samples
            tifffile.imwrite(tmp, czyx, ome=True, photometric="minisblack",
                             metadata={"axes": axes,
                                       "PhysicalSizeX": size_um[0], "PhysicalSizeY": size_um[1],
                                       "PhysicalSizeZ": size_um[2], "PhysicalSizeXUnit": "µm",
                                       "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm"})
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
