"""`neurostation filter`: gaussian, median, difference of gaussians, white top-hat or CLAHE on
a volume of any size, box by box, equal to the in-memory scipy/scikit-image result.

Each box is read with the halo its filter reaches (chunks/halo.py): real neighbours inside the
volume, the border mode only at the volume's own border. CLAHE is not local, so it runs on
whole 2D planes (exact per plane by construction). Output: a precomputed volume with its
pyramid, or a TIFF (axes ZYX, voxel size kept) written slab by slab.
"""

import functools
import os
import shutil
import sys

import numpy as np
from scipy import ndimage

from ..chunks.boxes import Box
from ..chunks.halo import BORDER_MODES, HaloSource, footprint_halo, sigma_halo
from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..ingest.volume import check_storable, write_reference, write_volume
from ..io.outputs import add_volume_options, check_tiff_options, output_format
from ..io.precomputed import check_writable, to_url
from ..io.sources import workdir
from ..io.tiff import write_ome_tiff
from ..storage.scales import box_bytes
from ..units import UNIT_NM, convert
from ..visualize.sources import open_volume_source

METHODS = ("gaussian", "median", "dog", "tophat", "clahe")
# Bytes of output per box: the filter holds the box with its halo in float64 and a few
# temporaries of that size, so 8 MiB of float32 output needs some 100 MiB per process.
BOX_BUDGET = 8 << 20


def add_parser(subparsers):
    p = subparsers.add_parser(
        "filter", help="filter a volume: gaussian, median, DoG, white top-hat, CLAHE",
        description="Filter a volume (TIFF, OME-TIFF, NIfTI, precomputed folder, URL or JSON "
        "reference) box by box, each box read with the halo its filter reaches, so the result "
        "equals scipy.ndimage / scikit-image on the whole volume in memory. gaussian and dog "
        "(difference of gaussians, low minus high sigma) give float32; median and tophat (white "
        "top-hat: the image minus its grey opening, background subtraction) keep the input's "
        "data type; clahe (skimage equalize_adapthist) runs on each whole xy plane and gives "
        "float32 in [0, 1]. Multi-channel inputs are filtered channel by channel.",
        epilog="example: neurostation filter ./volume -o ./smooth --method gaussian --sigma 0.8 "
        "--unit um --jobs 4")
    add_input_output(p)
    p.add_argument("--method", required=True, choices=METHODS, help="the filter")
    p.add_argument("--sigma", type=float, help="gaussian sigma; dog: the low sigma (in --unit)")
    p.add_argument("--high-sigma", type=float,
                   help="dog: the high sigma (default 1.6 x --sigma), in --unit")
    p.add_argument("--unit", default="voxel", choices=["voxel"] + sorted(UNIT_NM),
                   help="unit of the sigmas: voxel (the same on every axis) or a physical unit, "
                   "divided by each axis' voxel size (anisotropic voxels respected); default voxel")
    p.add_argument("--size", type=int, help="median: window edge in voxels (default 3)")
    p.add_argument("--radius", type=int, help="tophat: footprint radius in voxels (default 5)")
    p.add_argument("--footprint", choices=("ball", "cube"), default="ball",
                   help="tophat: a ball (disk with --2d) or a cube (square) of --radius")
    p.add_argument("--kernel-size", type=int,
                   help="clahe: tile edge in pixels (default: 1/8 of the plane's width and height)")
    p.add_argument("--clip-limit", type=float, default=0.01,
                   help="clahe: clip limit in (0, 1] (default 0.01)")
    p.add_argument("--2d", dest="planar", action="store_true",
                   help="filter each xy plane on its own (default: 3D); clahe is always per plane")
    p.add_argument("--border", choices=tuple(BORDER_MODES), default="reflect",
                   help="values beyond the volume's border, scipy's modes (default reflect)")
    add_volume_options(p)
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="image")
    return p


def add_input_output(p):
    """The input, -o/--output and --format arguments of a volume-to-volume command."""
    p.add_argument("input", help="TIFF/OME-TIFF/NIfTI file, precomputed folder, URL or JSON reference")
    p.add_argument("-o", "--output", required=True,
                   help="output: a .tif/.tiff file, or a folder/URL for a precomputed volume")
    p.add_argument("--format", choices=("tiff", "precomputed"),
                   help="output format (default: tiff for a .tif/.tiff name, else precomputed)")


def _per_channel(func, data):
    """Apply func to each channel of an (x, y, z, c) array."""
    return np.stack([func(data[..., c]) for c in range(data.shape[3])], axis=-1)


class Gaussian:
    """scipy gaussian_filter in float64 with sigma per axis (x, y, z voxels)."""

    def __init__(self, sigma, mode):
        self.sigma, self.mode = tuple(sigma), mode

    def __call__(self, data):
        return _per_channel(lambda a: ndimage.gaussian_filter(
            a.astype(np.float64), self.sigma, mode=self.mode), data)


class DifferenceOfGaussians:
    """gaussian(low) - gaussian(high), as skimage.filters.difference_of_gaussians."""

    def __init__(self, low, high, mode):
        self.low, self.high = Gaussian(low, mode), Gaussian(high, mode)

    def __call__(self, data):
        return self.low(data) - self.high(data)


class Median:
    """scipy median_filter with a window of `size` (x, y, z voxels)."""

    def __init__(self, size, mode):
        self.size, self.mode = tuple(size), mode

    def __call__(self, data):
        return _per_channel(lambda a: ndimage.median_filter(a, self.size, mode=self.mode), data)


class WhiteTophat:
    """skimage white_tophat (image minus its grey opening) with a footprint in x, y, z."""

    def __init__(self, footprint, mode):
        self.footprint, self.mode = footprint, mode

    def __call__(self, data):
        from skimage.morphology import white_tophat

        return _per_channel(lambda a: white_tophat(a, self.footprint, mode=self.mode), data)


class Clahe:
    """skimage equalize_adapthist on each whole xy plane (as a (y, x) image)."""

    def __init__(self, kernel_size, clip_limit):
        self.kernel_size, self.clip_limit = kernel_size, clip_limit

    def __call__(self, data):
        from skimage.exposure import equalize_adapthist

        out = np.empty(data.shape, np.float32)
        for z in range(data.shape[2]):
            for c in range(data.shape[3]):
                out[:, :, z, c] = equalize_adapthist(
                    data[:, :, z, c].T, kernel_size=self.kernel_size, clip_limit=self.clip_limit).T
        return out


class PlaneSource:
    """A source whose read(box) filters the whole xy planes of the box's z range and crops:
    for operations on whole planes. The last slab is kept, as boxes come x fastest."""

    def __init__(self, source, operation, dtype):
        self.source, self.operation, self.dtype = source, operation, np.dtype(dtype)
        self.shape, self.channels = tuple(source.shape), source.channels
        self._slab = (None, None)

    def read(self, box):
        (x0, y0, z0), (x1, y1, z1) = box.start, box.stop
        if self._slab[0] != (z0, z1):
            planes = Box((0, 0, z0), (self.shape[0], self.shape[1], z1))
            self._slab = ((z0, z1), self.operation(self.source.read(planes)).astype(self.dtype))
        return np.asfortranarray(self._slab[1][x0:x1, y0:y1])


def _positive(value, option, default=None):
    value = default if value is None else value
    if value is None or not value > 0:
        raise UserError(f"{option} must be a positive number, got {value}")
    return value


def sigma_voxels(sigma, unit, voxel_nm, planar, option):
    """A sigma in --unit -> (x, y, z) voxels (z 0 with --2d)."""
    if unit == "voxel":
        sigma_xyz = (sigma,) * 3
    else:
        if voxel_nm is None:
            raise UserError(f"{option} is in {unit} but the input carries no voxel size; give "
                            "it in voxels (--unit voxel)")
        sigma_xyz = tuple(s / v for s, v in zip(convert((sigma,) * 3, unit, "nm"), voxel_nm))
    return sigma_xyz[:2] + ((0.0,) if planar else sigma_xyz[2:])


def footprint(kind, radius, planar):
    """A ball/cube (disk/square with --2d) of `radius` as an (x, y, z) boolean array."""
    from skimage.morphology import ball, disk

    if kind == "cube":
        shape = (2 * radius + 1,) * 2 + ((1,) if planar else (2 * radius + 1,))
        return np.ones(shape, bool)
    return disk(radius).astype(bool)[:, :, None] if planar else ball(radius).astype(bool)


def plan_operation(args, source):
    """(operation, halo (x, y, z), output dtype, whole planes?) for the arguments."""
    method = args.method
    if method in ("gaussian", "dog"):
        low = sigma_voxels(_positive(args.sigma, "--sigma"), args.unit, source.voxel_nm,
                           args.planar, "--sigma")
        if method == "gaussian":
            return Gaussian(low, args.border), sigma_halo(low), np.float32, False
        high_value = _positive(args.high_sigma, "--high-sigma", 1.6 * args.sigma)
        if not high_value > args.sigma:
            raise UserError(f"--high-sigma must be larger than --sigma, got {high_value} <= {args.sigma}")
        high = sigma_voxels(high_value, args.unit, source.voxel_nm, args.planar, "--high-sigma")
        return DifferenceOfGaussians(low, high, args.border), sigma_halo(high), np.float32, False
    if method == "median":
        size = int(_positive(args.size, "--size", 3))
        window = (size, size, 1 if args.planar else size)
        return Median(window, args.border), footprint_halo(window), source.dtype, False
    if method == "tophat":
        radius = int(_positive(args.radius, "--radius", 5))
        shape = footprint(args.footprint, radius, args.planar)
        # an opening is an erosion then a dilation: the footprint's reach twice
        halo = tuple(2 * h for h in footprint_halo(shape.shape))
        return WhiteTophat(shape, args.border), halo, source.dtype, False
    if args.kernel_size is not None and args.kernel_size < 2:
        raise UserError(f"--kernel-size must be 2 or more pixels, got {args.kernel_size}")
    if not 0 < args.clip_limit <= 1:
        raise UserError(f"--clip-limit must be in (0, 1], got {args.clip_limit}")
    return Clahe(args.kernel_size, args.clip_limit), (0, 0, 0), np.float32, True


def processed_source(args, source):
    """The lazy filtered source of `source` for the arguments (checked first)."""
    operation, halo, dtype, planes = plan_operation(args, source)
    if planes:
        return PlaneSource(source, operation, dtype)
    return HaloSource(source, operation, halo, args.border, dtype)


def _read_slab(source, box):
    return box.start[2], source.read(box)


def write_tiff(path, filtered, voxel_nm, jobs, desc="filtering"):
    """Write the filtered volume as a (Z)YX TIFF, slab of whole planes by slab (in order)."""
    x, y, z = filtered.shape
    depth = max(1, BOX_BUDGET // box_bytes((x, y, 1), filtered.dtype, filtered.channels))
    slabs = [Box((0, 0, z0), (x, y, min(z, z0 + depth))) for z0 in range(0, z, depth)]

    def planes():
        waiting, nxt = {}, 0
        for z0, data in run_tasks(functools.partial(_read_slab, filtered), slabs, jobs=jobs,
                                  desc=desc):
            waiting[z0] = data
            while nxt in waiting:
                block = waiting.pop(nxt)
                for k in range(block.shape[2]):
                    plane = np.transpose(block[:, :, k], (1, 0, 2))
                    yield plane[..., 0] if filtered.channels == 1 else plane
                nxt += block.shape[2]

    write_ome_tiff(path, planes(), (z, y, x), filtered.dtype, voxel_nm, filtered.channels)


def write_precomputed(volume, source, args, jobs, record, budget=BOX_BUDGET):
    """Write the lazy `volume` made from `source` as the precomputed volume -o with its
    pyramid (record: the command's entries of the completion record), and --reference."""
    voxel_nm = source.voxel_nm
    if voxel_nm is None:
        print("warning: the input carries no voxel size; assuming 1,1,1 nm", file=sys.stderr)
        voxel_nm = (1.0, 1.0, 1.0)
    check_storable(volume.dtype, volume.channels, args)
    url = to_url(args.output)
    check_writable(url)
    record = {**record, "sources": [source.name], "voxel_size": list(voxel_nm), "voxel_unit": "nm"}
    options = {k: v for k, v in vars(args).items() if k not in ("func", "output", "jobs")}
    params = {**options, "input": args.input if "://" in args.input else os.path.abspath(args.input)}
    write_volume(volume, url, voxel_nm, args, jobs, params, record, budget=budget)
    if args.reference:
        write_reference(args.reference, url)


def run(args):
    check_tiff_options(args)
    kind = output_format(args)
    jobs = resolve_jobs(args.jobs)
    tmp = workdir()
    try:
        source = open_volume_source(args.input, tmp, mip=args.mip)
        filtered = processed_source(args, source)
        if kind == "tiff":
            write_tiff(args.output, filtered, source.voxel_nm, jobs)
        else:
            write_precomputed(filtered, source, args, jobs, {"command": "filter",
                                                              "method": args.method})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
