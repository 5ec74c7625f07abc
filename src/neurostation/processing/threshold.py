"""`neurostation threshold`: a global threshold (otsu, li, yen, triangle or a manual value) of a
volume of any size, from streaming passes over its boxes, equal to scikit-image's on the whole
volume in memory, or a local one (sauvola, niblack: local_threshold.py), and the binary mask
(uint8 0/1) as a precomputed volume or a TIFF.

The histogram is scikit-image's (exposure.histogram): one bin per integer value over [min, max]
for integer data, 256 equal bins over [min, max] (numpy's edges) for floats. Per-box counts
add up to exactly the in-memory histogram, so otsu/yen/triangle (and li on integers, which
skimage also runs on that histogram) are exact; li on floats iterates on the data, one pass
per iteration, to its fixed point.
"""

import functools
import shutil

import numpy as np

from ..chunks.boxes import plan_boxes
from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..io.outputs import check_tiff_options, output_format, staged_file
from ..io.sources import workdir
from ..units import UNIT_NM
from ..visualize.sources import open_volume_source
from . import local_threshold as local
from .filter import add_input_output, write_precomputed, write_tiff

METHODS = ("otsu", "li", "yen", "triangle", "manual") + local.METHODS
BOX_BUDGET = 8 << 20  # bytes of input per box read in a pass
FLOAT_BINS = 256  # skimage's default nbins (floats only; integers get one bin per value)
MAX_INTEGER_BINS = 1 << 24  # one count per value: 128 MiB of int64 at most
LI_MAX_PASSES = 200


def add_parser(subparsers):
    p = subparsers.add_parser(
        "threshold", help="threshold a volume globally (otsu, li, yen, triangle, manual) or "
        "locally (sauvola, niblack) into a mask",
        description="Compute a global threshold of a one-channel volume (TIFF, OME-TIFF, NIfTI, "
        "precomputed folder, URL or JSON reference) from histogram passes over it box by box "
        "(memory does not grow with the volume), equal to scikit-image's threshold_otsu/li/yen/"
        "triangle on the whole volume in memory, or take --value; print it, and write the binary "
        "mask (uint8, 1 where the value is above the threshold; --invert: at or below). Local "
        "methods (sauvola, niblack) compute a threshold per voxel from the mean and standard "
        "deviation in a --window around it, box by box with a halo of half a window, equal to "
        "scikit-image's threshold_sauvola/niblack on the whole volume (voxels within float "
        "rounding of their threshold aside).",
        epilog="example: neurostation threshold ./volume -o ./mask --method otsu --report t.tsv; "
        "neurostation threshold stack.ome.tif -o mask.tif --method sauvola --window 3 --unit um")
    add_input_output(p)
    p.add_argument("--method", required=True, choices=METHODS, help="the threshold method")
    p.add_argument("--value", type=float, help="manual: the threshold, within the data's range")
    p.add_argument("--window", type=float,
                   help=f"sauvola/niblack: the window's edge, an odd number of voxels (default "
                   f"{local.DEFAULT_WINDOW}), or a length in --unit (each axis: the odd number of "
                   "voxels nearest to it)")
    p.add_argument("--unit", default="voxel", choices=["voxel"] + sorted(UNIT_NM),
                   help="unit of --window: voxel (default) or a physical unit divided by each "
                   "axis' voxel size (anisotropic voxels respected)")
    p.add_argument("--k", type=float,
                   help=f"sauvola/niblack: k (default {local.DEFAULT_K}; sauvola within [0, 1], "
                   "niblack within [-2, 2]: threshold = mean - k std)")
    p.add_argument("--r", type=float,
                   help="sauvola: R, the dynamic range of the standard deviation (default: half "
                   "the data type's range, 1 for floats, as scikit-image)")
    p.add_argument("--2d", dest="planar", action="store_true",
                   help="sauvola/niblack: a window in each xy plane (default: 3D)")
    p.add_argument("--invert", action="store_true",
                   help="mark the voxels at or below the threshold instead of those above")
    p.add_argument("--report", metavar="TSV",
                   help="also write the threshold as a one-row TSV (method, threshold, min, max)")
    p.add_argument("--mip", type=int, default=0, help="precomputed input: the scale to threshold")
    p.add_argument("--chunk-size", metavar="X,Y,Z", help="precomputed: chunk size in voxels")
    p.add_argument("--levels", type=int, help="precomputed: number of downsampled scales")
    p.add_argument("--reference", metavar="JSON",
                   help="precomputed: also write a JSON reference {\"url\": ...} to the volume here")
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="segmentation", encoding="raw")
    return p


def pass_boxes(source):
    """Boxes of about BOX_BUDGET bytes of input tiling the volume, for one streaming pass."""
    x, y, z = source.shape
    itemsize = np.dtype(source.dtype).itemsize
    bx, by = min(x, 256), min(y, 256)
    while bx * by * itemsize > BOX_BUDGET and max(bx, by) > 1:
        bx, by = max(1, bx // 2), max(1, by // 2)
    bz = max(1, min(z, BOX_BUDGET // (bx * by * itemsize)))
    return plan_boxes(source.shape, (bx, by, bz))


def _values(source, box):
    return source.read(box)[..., 0].ravel()


def _box_range(source, box):
    data = _values(source, box)
    finite = bool(np.isfinite(data).all()) if data.dtype.kind == "f" else True
    return data.min(), data.max(), finite


def _box_bincount(source, low, size, box):
    return np.bincount(_values(source, box).astype(np.int64) - low, minlength=size)


def _box_histogram(source, edge_range, box):
    return np.histogram(_values(source, box), bins=FLOAT_BINS, range=edge_range)[0]


def _box_li_sums(source, low, t, box):
    """(sum, count) above and at-or-below `t` of the box's values shifted by -low."""
    data = _values(source, box).astype(np.float64) - low
    fore = data > t
    return np.array([data[fore].sum(), fore.sum(), data[~fore].sum(), (~fore).sum()])


def _sum_pass(func, source, jobs, desc):
    """The sum over all boxes of func(box)."""
    total = None
    for part in run_tasks(func, pass_boxes(source), jobs=jobs, desc=desc):
        total = part if total is None else total + part
    return total


def data_range(source, jobs):
    """(min, max) of the volume, refusing NaN/infinite values and a constant volume."""
    parts = list(run_tasks(functools.partial(_box_range, source), pass_boxes(source), jobs=jobs,
                           desc="range"))
    if not all(finite for _, _, finite in parts):
        raise UserError("the volume holds NaN or infinite values; a global threshold needs "
                        "finite values")
    low, high = min(p[0] for p in parts), max(p[1] for p in parts)
    if low == high:
        raise UserError(f"the volume is constant ({low}); there is nothing to threshold")
    return low, high


def histogram(source, low, high, jobs):
    """(counts, bin centers) as skimage.exposure.histogram on the whole volume."""
    if np.dtype(source.dtype).kind in "iu":
        size = int(high) - int(low) + 1
        if size > MAX_INTEGER_BINS:
            raise UserError(f"the volume's values span {size} integers (more than "
                            f"{MAX_INTEGER_BINS}); convert it to float32 to threshold it")
        counts = _sum_pass(functools.partial(_box_bincount, source, int(low), size),
                           source, jobs, "histogram")
        return counts, np.arange(int(low), int(high) + 1)
    edge_range = (low, high)  # numpy scalars of the data's type, as numpy's own range=None
    counts = _sum_pass(functools.partial(_box_histogram, source, edge_range), source, jobs,
                       "histogram")
    edges = np.histogram_bin_edges(np.empty(0, source.dtype), FLOAT_BINS, range=edge_range)
    return counts, (edges[:-1] + edges[1:]) / 2.0


def triangle(counts, centers):
    """skimage threshold_triangle's geometry on a given histogram (skimage takes no hist=)."""
    hist, nbins = np.asarray(counts), len(counts)
    peak = int(np.argmax(hist))
    peak_height = hist[peak]
    low, high = np.flatnonzero(hist)[[0, -1]]
    flip = peak - low < high - peak
    if flip:
        hist, low, peak = hist[::-1], nbins - high - 1, nbins - peak - 1
    width = peak - low
    x1 = np.arange(width)
    norm = np.sqrt(peak_height**2 + width**2)
    length = (peak_height / norm) * x1 - (width / norm) * hist[x1 + low]
    level = int(np.argmax(length)) + low
    return centers[nbins - level - 1 if flip else level]


def li_integer(counts, low):
    """skimage threshold_li's loop on the histogram of integer data (tolerance 0.5)."""
    hist = counts.astype(np.float32)
    centers = np.arange(len(counts))
    t_next = float(np.dot(counts, centers)) / counts.sum()
    t_curr = -1.0
    while abs(t_next - t_curr) > 0.5:
        t_curr = t_next
        fore = centers > t_curr
        mean_fore = np.average(centers[fore], weights=hist[fore])
        mean_back = np.average(centers[~fore], weights=hist[~fore])
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return t_next + low


def li_float(source, low, jobs):
    """skimage threshold_li's loop on float data, one pass per iteration, to its fixed point
    (skimage stops within half the smallest gap between values of it)."""
    sums = _sum_pass(functools.partial(_box_li_sums, source, low.item(), -1.0), source, jobs, "li")
    t_next, previous = (sums[0] + sums[2]) / (sums[1] + sums[3]), None
    for _ in range(LI_MAX_PASSES):
        sums = _sum_pass(functools.partial(_box_li_sums, source, low.item(), t_next), source,
                         jobs, "li")
        if sums[1] == previous:  # the same split as last pass: t_next is the fixed point
            break
        previous = sums[1]
        mean_fore, mean_back = sums[0] / sums[1], sums[2] / sums[3]
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return t_next + low.item()


def compute_threshold(source, method, value, jobs):
    """(threshold, min, max) of the volume by `method` (--value for manual)."""
    from skimage.filters import threshold_otsu, threshold_yen

    if source.channels != 1:
        raise UserError(f"the input has {source.channels} channels; threshold takes one channel")
    if method == "manual" and value is None:
        raise UserError("--method manual needs --value")
    if method != "manual" and value is not None:
        raise UserError(f"--value applies to --method manual, not {method}")
    low, high = data_range(source, jobs)
    if method == "manual":
        if not low <= value < high:
            raise UserError(f"--value {value} is outside the data's range [{low}, {high}); "
                            "the mask would be all one value")
        return value, low, high
    if method == "li" and np.dtype(source.dtype).kind == "f":
        return li_float(source, low, jobs), low, high
    counts, centers = histogram(source, low, high, jobs)
    if method == "li":
        return li_integer(counts, low), low, high
    if method == "triangle":
        return triangle(counts, centers), low, high
    func = threshold_otsu if method == "otsu" else threshold_yen
    return func(hist=(counts, centers)), low, high


class MaskSource:
    """A lazy source whose read(box) is the uint8 mask of `source` > threshold (or <=)."""

    dtype, channels = np.dtype(np.uint8), 1

    def __init__(self, source, threshold, invert):
        self.source, self.threshold, self.invert = source, threshold, invert
        self.shape, self.voxel_nm, self.name = tuple(source.shape), source.voxel_nm, source.name

    def read(self, box):
        above = self.source.read(box) > self.threshold
        return np.asfortranarray(~above if self.invert else above, dtype=np.uint8)


def local_options(args, source):
    """The checked (window (x, y, z) voxels, k, r) of a local method, or None for a global one
    (which refuses the local options)."""
    given = [o for o, v in (("--window", args.window), ("--k", args.k), ("--r", args.r),
                            ("--unit", args.unit != "voxel" or None), ("--2d", args.planar or None))
             if v is not None]
    if args.method not in local.METHODS:
        if given:
            raise UserError(f"{given[0]} applies to --method sauvola or niblack, not {args.method}")
        return None
    if args.value is not None:
        raise UserError(f"--value applies to --method manual, not {args.method}")
    if args.r is not None and args.method != "sauvola":
        raise UserError(f"--r applies to --method sauvola, not {args.method}")
    if source.channels != 1:
        raise UserError(f"the input has {source.channels} channels; threshold takes one channel")
    if args.window is None and args.unit != "voxel":
        raise UserError(f"--unit {args.unit} needs --window")
    size = local.DEFAULT_WINDOW if args.window is None else args.window
    window = local.window_voxels(size, args.unit, source.voxel_nm, args.planar, source.shape)
    k = local.check_k(args.method, local.DEFAULT_K if args.k is None else args.k)
    r = None
    if args.method == "sauvola":
        r = local.default_r(source.dtype) if args.r is None else args.r
        if not r > 0:
            raise UserError(f"--r must be positive, got {r:g}")
    return window, k, r


def write_report(path, header, row):
    with staged_file(path, ".tsv") as tmp, open(tmp, "w") as f:
        f.write("\t".join(header) + "\n")
        f.write("\t".join("" if v is None else f"{v}" for v in row) + "\n")


def plan_mask(args, source, jobs):
    """(lazy mask, completion record entries, report (header, row)) for the arguments."""
    options = local_options(args, source)
    if options is None:
        threshold, low, high = compute_threshold(source, args.method, args.value, jobs)
        print(f"threshold ({args.method}): {float(threshold)!r}")
        return (MaskSource(source, threshold, args.invert), {"threshold": float(threshold)},
                (("method", "threshold", "min", "max"), (args.method, float(threshold), low, high)))
    window, k, r = options
    low, high = data_range(source, jobs)
    print(f"threshold ({args.method}): local, window {'x'.join(map(str, window))} voxels, "
          f"k {k!r}" + ("" if r is None else f", r {float(r)!r}"))
    mask = local.LocalMaskSource(source, args.method, window, k, r, args.invert)
    record = {"window": list(window), "k": k, "r": None if r is None else float(r)}
    header = ("method", "window_x", "window_y", "window_z", "k", "r", "min", "max")
    return mask, record, (header, (args.method, *window, float(k),
                                   None if r is None else float(r), low, high))


def run(args):
    check_tiff_options(args)
    kind = output_format(args)
    jobs = resolve_jobs(args.jobs)
    tmp = workdir()
    try:
        source = open_volume_source(args.input, tmp, mip=args.mip)
        mask, record, report = plan_mask(args, source, jobs)
        if kind == "tiff":
            write_tiff(args.output, mask, source.voxel_nm, jobs, desc="masking")
        else:
            write_precomputed(mask, source, args, jobs, {
                "command": "threshold", "method": args.method, **record}, budget=BOX_BUDGET)
        if args.report:
            write_report(args.report, *report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
