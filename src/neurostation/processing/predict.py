"""`neurostation predict`: apply an ONNX segmentation model to a volume of any size by
overlap-tiling, writing probabilities, an argmax label image or a thresholded mask.

The volume is cut into cores on a grid from the origin; each core is run as a tile of the
model's input size: the core plus a margin of real neighbours (the border mode only beyond the
volume), and the margin's output is discarded. So for a model whose receptive field fits in the
margin the stitched output equals the model run on the whole volume padded by the margin with
the border mode (with a zero border and a one-layer model: the model on the whole volume). 2D
models (N, C, Y, X) run on each xy plane, 3D models (N, C, Z, Y, X) on blocks.
"""

import collections
import shutil

import numpy as np

from ..chunks.boxes import Box
from ..chunks.halo import BORDER_MODES, read_with_halo
from ..chunks.pool import resolve_jobs
from ..errors import UserError
from ..io.outputs import add_volume_options, check_tiff_options, output_format
from ..io.sources import workdir
from ..visualize.sources import check_channel, open_volume_source
from .filter import add_input_output, write_precomputed, write_tiff
from .onnx_model import OnnxModel

MODES = ("probabilities", "argmax", "threshold")
DEFAULT_TILE = {2: (256, 256, 1), 3: (64, 64, 32)}  # x, y, z for models with dynamic sizes
CACHE_BYTES = 256 << 20  # model outputs of cores kept for the next boxes that share them


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="apply an ONNX segmentation model chunk-wise (probabilities or labels)",
        description="Apply a deep-learning segmentation model (ONNX, run by onnxruntime on the "
        "CPU) to a volume of any size (TIFF, OME-TIFF, NIfTI, precomputed folder, URL or JSON "
        "reference). The volume is cut into tiles of the model's input size (read from the "
        "model when fixed, --tile when dynamic) that overlap by --margin; the margin's output "
        "is discarded, so for a model whose receptive field fits in the margin the result "
        "equals the model on the whole volume (padded with --border). 2D models (N, C, Y, X) "
        "run on each xy plane, 3D models (N, C, Z, Y, X) on blocks. Output: the model's "
        "channels as float32 probabilities, their argmax as labels, or one channel thresholded "
        "into a mask; voxel size kept.",
        epilog="example: neurostation predict ./volume --model unet.onnx -o ./labels --mode "
        "argmax --tile 128,128,32 --margin 16,16,8 --jobs 4")
    add_input_output(p)
    p.add_argument("--model", required=True, help="the model: an ONNX file (.onnx)")
    p.add_argument("--mode", choices=MODES, default="probabilities",
                   help="probabilities: every output channel as float32 (default); argmax: the "
                   "label of the largest channel; threshold: channel --class above --threshold "
                   "as a 0/1 mask")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="threshold mode: the probability above which a voxel is foreground "
                   "(default 0.5)")
    p.add_argument("--class", dest="klass", type=int,
                   help="threshold mode: the output channel to threshold (default 0 for a "
                   "one-channel model; needed when the model has several)")
    p.add_argument("--tile", metavar="X,Y[,Z]",
                   help="tile size in voxels for the axes the model leaves dynamic (default "
                   "256,256 for 2D models, 64,64,32 for 3D); axes the model fixes keep its size")
    p.add_argument("--margin", metavar="X,Y[,Z]",
                   help="overlap discarded on each side of a tile, in voxels: at least the "
                   "model's receptive-field radius (default 1/8 of the tile)")
    p.add_argument("--channel", type=int,
                   help="feed only this channel of the image (for a one-channel model on a "
                   "multi-channel image); default: all channels")
    p.add_argument("--input-scale", type=float, default=1.0,
                   help="multiply the image by this before the model (default 1)")
    p.add_argument("--input-offset", type=float, default=0.0,
                   help="then add this (default 0): the normalisation the model was trained with")
    p.add_argument("--border", choices=tuple(BORDER_MODES), default="constant",
                   help="values beyond the volume's border: constant (zero, as the model's own "
                   "padding; default), reflect, nearest or mirror")
    p.add_argument("--max-model-size", type=float, default=1024, metavar="MIB",
                   help="refuse model files larger than this many MiB (default 1024)")
    add_volume_options(p)
    p.add_argument("--jobs", type=int, default=0,
                   help="threads onnxruntime uses (default: GALAXY_SLOTS, else 1)")
    p.set_defaults(func=run, layer_type="image")
    return p


def parse_sizes(text, rank, option, minimum):
    """`X,Y` (2D models) or `X,Y,Z` (3D) -> (x, y, z) integers >= minimum (z 1 / 0 in 2D)."""
    parts = str(text).split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != rank or min(values) < minimum:
        axes = "X,Y" if rank == 2 else "X,Y,Z"
        raise UserError(f"{option} must be {rank} whole numbers {axes} of at least {minimum} "
                        f"for this {rank}D model, got {text!r}")
    return values if rank == 3 else values + (minimum,)


def plan_tiles(model, args):
    """(tile, margin), each (x, y, z) voxels: fixed model axes keep the model's size."""
    rank = model.rank
    fixed = tuple(reversed(model.tile_zyx)) + ((1,) if rank == 2 else ())
    given = parse_sizes(args.tile, rank, "--tile", 1) if args.tile else None
    for axis, size, want in zip("xyz", fixed, given or fixed):
        if size is not None and want != size:
            raise UserError(f"--tile {args.tile} asks {want} voxels in {axis} but {model.name} "
                            f"takes exactly {size}")
    tile = tuple(f if f is not None else (given or DEFAULT_TILE[rank])[i]
                 for i, f in enumerate(fixed))
    if args.margin:
        margin = parse_sizes(args.margin, rank, "--margin", 0)
    else:
        margin = tuple(t // 8 for t in tile[:rank]) + ((0,) if rank == 2 else ())
    for axis, t, m in zip("xyz", tile, margin):
        if 2 * m >= t:
            raise UserError(f"--margin {m} in {axis} leaves no core of the {t}-voxel tile; "
                            "it must be less than half the tile")
    return tile, margin


def check_channels(model, source, channel):
    """The image channels fed to the model: all, or the one --channel picks (a 3D model
    needs a stack, not a single plane)."""
    if model.rank == 3 and source.shape[2] == 1:
        raise UserError(f"{model.name} is a 3D model (input N, C, Z, Y, X) but {source.name} is "
                        "a single plane; use a 2D model (N, C, Y, X)")
    if channel is not None:
        check_channel(source, channel)
    fed = 1 if channel is not None else source.channels
    if model.channels is not None and fed != model.channels:
        hint = " (pick one with --channel)" if model.channels == 1 else ""
        raise UserError(f"{model.name} takes {model.channels} input channel(s) but "
                        f"{source.name} gives {fed}{hint}")
    return [channel] if channel is not None else list(range(source.channels))


class Prediction:
    """The model's output over the volume as a lazy source: read(box) runs the cores of the
    grid that meet the box, from one read of the input they need (cores computed for an
    earlier box are kept in a small cache), and crops."""

    def __init__(self, source, model, channels, tile, margin, args):
        self.source, self.model, self.fed = source, model, channels
        self.tile, self.margin, self.border = tile, margin, args.border
        self.core = tuple(t - 2 * m for t, m in zip(tile, margin))
        self.scale, self.offset = args.input_scale, args.input_offset
        self.shape = tuple(source.shape)
        self._cache = collections.OrderedDict()
        first = Box((0, 0, 0), tuple(min(c, n) for c, n in zip(self.core, self.shape)))
        self.classes = self._cores(first)[(0, 0, 0)].shape[3]  # runs the model once: checked
        self.mode, self.threshold = args.mode, args.threshold
        self.klass = plan_output(args, self.classes, model.name)
        self.channels = self.classes if self.mode == "probabilities" else 1
        self.dtype = np.dtype(np.float32 if self.mode == "probabilities" else
                              np.uint8 if self.mode == "threshold" or self.classes <= 256
                              else np.uint16)

    def __getstate__(self):
        return {**self.__dict__, "_cache": collections.OrderedDict()}

    def _run(self, region, origin, start):
        """The model's output (x, y, z, K) float32 on the core at `start`, its tile cut from
        `region` (the input from `origin`, the border mode already beyond the volume)."""
        lo = [a - m - o for a, m, o in zip(start, self.margin, origin)]
        data = region[tuple(slice(a, a + t) for a, t in zip(lo, self.tile))][..., self.fed]
        data = data.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        tile = data.transpose(3, 2, 1, 0)  # (C, Z, Y, X)
        if self.model.rank == 2:
            out = self.model.run(tile[:, 0])[:, None]
        else:
            out = self.model.run(tile)
        size = [min(c, n - a) for a, c, n in zip(start, self.core, self.shape)]
        return out.transpose(3, 2, 1, 0)[tuple(slice(m, m + c) for m, c in zip(self.margin, size))]

    def _cores(self, box):
        """{core start: output} of the cores meeting the box; the missing ones run from one
        read of the input window they share."""
        ranges = [range(a // c * c, b, c) for a, b, c in zip(box.start, box.stop, self.core)]
        starts = [(x, y, z) for z in ranges[2] for y in ranges[1] for x in ranges[0]]
        outputs = {s: self._cache.get(s) for s in starts}
        missing = [s for s, out in outputs.items() if out is None]
        if missing:
            origin = tuple(min(s[i] for s in missing) - self.margin[i] for i in range(3))
            stop = tuple(max(s[i] for s in missing) - self.margin[i] + self.tile[i]
                         for i in range(3))
            region = read_with_halo(self.source, Box(origin, stop), (0, 0, 0), self.border)
            for start in missing:
                outputs[start] = self._cache[start] = self._run(region, origin, start)
        used = sum(a.nbytes for a in self._cache.values())
        while used > CACHE_BYTES and self._cache:
            used -= self._cache.popitem(last=False)[1].nbytes
        return outputs

    def read(self, box):
        probs = np.empty(box.shape + (self.classes,), np.float32)
        for start, out in self._cores(box).items():
            lo = [max(a, s) for a, s in zip(start, box.start)]
            hi = [min(a + n, s) for a, n, s in zip(start, out.shape, box.stop)]
            probs[tuple(slice(l - s, h - s) for l, h, s in zip(lo, hi, box.start))] = \
                out[tuple(slice(l - a, h - a) for l, h, a in zip(lo, hi, start))]
        return np.asfortranarray(self.finish(probs))

    def finish(self, probs):
        """Model outputs (x, y, z, K) -> the output voxels of --mode."""
        if self.mode == "probabilities":
            return probs
        if self.mode == "argmax":
            return np.argmax(probs, axis=3).astype(self.dtype)[..., None]
        return (probs[..., self.klass] > self.threshold).astype(np.uint8)[..., None]


def plan_output(args, classes, name):
    """Check --mode against the model's output channels; the channel thresholded (or None)."""
    if args.mode == "argmax" and classes < 2:
        raise UserError(f"{name} gives one output channel; argmax needs several (use --mode "
                        "threshold)")
    if args.mode != "threshold":
        return None
    klass = args.klass if args.klass is not None else (0 if classes == 1 else None)
    if klass is None:
        raise UserError(f"{name} gives {classes} output channels; choose the one to threshold "
                        f"with --class (0 to {classes - 1})")
    if not 0 <= klass < classes:
        raise UserError(f"--class {klass} does not exist: {name} gives {classes} output "
                        f"channel(s), 0 to {classes - 1}")
    return klass


def run(args):
    check_tiff_options(args)
    kind = output_format(args)
    if args.max_model_size <= 0:
        raise UserError(f"--max-model-size must be a positive number of MiB, got {args.max_model_size}")
    threads = resolve_jobs(args.jobs)
    tmp = workdir()
    try:
        source = open_volume_source(args.input, tmp, mip=args.mip)
        model = OnnxModel(args.model, threads, args.max_model_size)
        channels = check_channels(model, source, args.channel)
        tile, margin = plan_tiles(model, args)
        prediction = Prediction(source, model, channels, tile, margin, args)
        # boxes run one at a time in this process; onnxruntime uses --jobs threads in each
        if kind == "tiff":
            write_tiff(args.output, prediction, source.voxel_nm, 1, desc="predicting")
        else:
            args.layer_type = "image" if args.mode == "probabilities" else "segmentation"
            write_precomputed(prediction, source, args, 1, {"command": "predict",
                                                            "model": model.name,
                                                            "mode": args.mode})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
