"""`neurostation seed-map`: correlation of every voxel's time series with a seed region's mean
time series, streamed in slabs of z-planes so memory stays bounded however long the series is.

Two passes over the file: the seed's mean time series from the slabs that hold seed voxels,
then each slab's voxel-wise correlation with it.
"""

import os
import sys

import nibabel as nib
import numpy as np

from ...errors import UserError
from ...io.nifti import iter_nifti_blocks, load_series
from ...io.outputs import nifti_suffix, staged
from ...progress import progress
from ...units import parse_xyz
from .masks import volume_on_grid

FISHER_CLIP = 1 - 1e-7  # |r| is clipped here before arctanh so a seed voxel does not give inf


def add_parser(subparsers):
    p = subparsers.add_parser(
        "seed-map", help="correlate every voxel's time series with a seed region's mean",
        description="Pearson correlation of every voxel's time series with the mean time "
        "series of a seed region (a label of a mask/atlas image, or a sphere around a point "
        "in mm), as a 3D NIfTI on the series' grid. The series is read in slabs of z-planes "
        "(two passes), so memory depends on --max-memory, not on the series length. Voxels "
        "whose series is constant get 0.",
        epilog="example: neurostation seed-map sub-01_task-rest_bold.nii.gz --sphere 0,-52,26 "
        "--radius 6 --fisher-z -o pcc_map.nii.gz",
    )
    p.add_argument("series", help="4D NIfTI series (x, y, z, time), at least 3 time points")
    p.add_argument("-o", "--output", required=True, help="correlation map to write (3D NIfTI)")
    p.add_argument("--seed-mask", metavar="NIFTI",
                   help="seed as an image: its non-zero voxels, or those equal to --seed-label "
                   "(another grid is resampled with nearest neighbour)")
    p.add_argument("--seed-label", type=int, help="with --seed-mask: the label of the seed")
    p.add_argument("--sphere", metavar="X,Y,Z",
                   help="seed as a sphere centred at this world position in mm (write "
                   "--sphere=-4,-52,26 when x is negative)")
    p.add_argument("--radius", type=float, default=6.0, metavar="MM",
                   help="with --sphere: radius in mm (default 6); the nearest voxel is used "
                   "when no voxel centre lies within it")
    p.add_argument("--fisher-z", action="store_true",
                   help="write Fisher's z = arctanh(r) instead of r")
    p.add_argument("--max-memory", type=float, default=256, metavar="MB",
                   help="memory for one slab of the series, in MB (default 256)")
    p.set_defaults(func=run)
    return p


def sphere_voxels(img, centre, radius):
    """Voxel indices (n, 3) whose centres lie within `radius` mm of `centre` (world mm)."""
    affine, shape = img.affine, img.shape[:3]
    ijk = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    dist = np.sqrt(((world - np.asarray(centre)[:, None]) ** 2).sum(axis=0))
    inside = dist <= radius
    if inside.any():
        return ijk[:, inside].T
    nearest = np.rint(np.linalg.solve(affine[:3, :3], np.asarray(centre) - affine[:3, 3]))
    if np.all(nearest >= 0) and np.all(nearest < shape):
        return nearest.astype(int)[None, :]
    raise UserError(f"the seed sphere at {tuple(centre)} mm lies outside the series' field of "
                    "view")


def mask_voxels(path, img, label):
    """Voxel indices (n, 3) of the seed in a mask/label image."""
    data = volume_on_grid(path, img, "seed mask")
    seed = data == label if label is not None else data != 0
    if not seed.any():
        what = f"label {label}" if label is not None else "any non-zero voxel"
        raise UserError(f"seed mask {os.path.basename(path)} has no voxel with {what} on the "
                        "series' grid (no overlap with the series)")
    return np.argwhere(seed)


def slab_planes(img, max_memory_mb):
    """z-planes per slab so one slab in float64, plus its centred copy, fits the budget."""
    x, y, z, t = img.shape
    per_plane = x * y * t * 8 * 3
    return max(1, min(z, int(max_memory_mb * 2 ** 20 // per_plane)))


def seed_series(path, seed, planes, t):
    """Mean time series of the seed voxels, reading only slabs up to the last seed plane."""
    total = np.zeros(t)
    last = seed[:, 2].max()
    for number, block in enumerate(iter_nifti_blocks(path, planes)):
        z0 = number * planes
        inside = seed[(seed[:, 2] >= z0) & (seed[:, 2] < z0 + planes)]
        if len(inside):
            total += np.asarray(block[inside[:, 0], inside[:, 1], inside[:, 2] - z0],
                                np.float64).sum(axis=0)
        if z0 + planes > last:
            break
    return total / len(seed)


def correlate(block, seed):
    """Pearson r of each voxel's series (block x, y, z, t) with the centred, unit-norm seed."""
    # NIfTI slabs arrive in Fortran order: keep it, so (voxel, time) is a view, not a copy
    flat = block.astype(np.float64, order="F").reshape(-1, block.shape[-1], order="F")
    flat -= flat.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", flat, flat))
    r = flat @ seed
    np.divide(r, norm, out=r, where=norm > 0)
    r[norm == 0] = 0
    return r.reshape(block.shape[:-1], order="F"), int((norm == 0).sum())


def run(args):
    img = load_series(args.series)
    name = os.path.basename(args.series)
    if (args.seed_mask is None) == (args.sphere is None):
        raise UserError("give the seed as either --seed-mask or --sphere X,Y,Z")
    if args.seed_label is not None and not args.seed_mask:
        raise UserError("--seed-label needs --seed-mask")
    if not args.radius > 0:
        raise UserError(f"--radius must be a positive size in mm, got {args.radius:g}")
    if not args.max_memory > 0:
        raise UserError(f"--max-memory must be positive (MB), got {args.max_memory:g}")
    if args.sphere:
        seed = sphere_voxels(img, parse_xyz(args.sphere, "--sphere", positive=False), args.radius)
    else:
        seed = mask_voxels(args.seed_mask, img, args.seed_label)
    t = img.shape[3]
    planes = slab_planes(img, args.max_memory)
    mean = seed_series(args.series, seed, planes, t)
    mean -= mean.mean()
    spread = np.sqrt(mean @ mean)
    if spread == 0:
        raise UserError(f"the seed's mean time series in {name} is constant; its correlation "
                        "is undefined (is the seed outside the brain?)")
    mean /= spread
    result = np.zeros(img.shape[:3], np.float32)
    flat_voxels = 0
    slabs = -(-img.shape[2] // planes)
    blocks = progress(iter_nifti_blocks(args.series, planes), total=slabs, desc="correlating slabs")
    for number, block in enumerate(blocks):
        r, flat = correlate(block, mean)
        result[:, :, number * planes: number * planes + r.shape[2]] = r
        flat_voxels += flat
    if args.fisher_z:
        result = np.arctanh(np.clip(result, -FISHER_CLIP, FISHER_CLIP)).astype(np.float32)
    out_img = nib.Nifti1Image(result, img.affine)
    out_img.header.set_xyzt_units(img.header.get_xyzt_units()[0])
    with staged({"map": (args.output, nifti_suffix(args.output))}) as out:
        nib.save(out_img, out["map"])
    kind = "Fisher z" if args.fisher_z else "r"
    print(f"seed of {len(seed)} voxel(s), {t} time points, {slabs} slab(s) of {planes} "
          f"plane(s): {kind} from {result.min():.3f} to {result.max():.3f}; {flat_voxels} "
          "voxel(s) with a constant series set to 0")
