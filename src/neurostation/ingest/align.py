"""`neurostation align`: rigid alignment (rotation + translation) of serial sections.

Each section is registered to the previous one (pairs in parallel; the method is in
`rigid.py`), the pairwise transforms are chained to a reference section, and every section
is resampled once with its chained transform and written as it goes (a few sections in
memory). Sections of different sizes are first centred on a common canvas.
"""

import os
import sys

import numpy as np
import tifffile

from ..chunks.boxes import Box
from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..io.detect import detect_format
from ..io.sources import TiffStack, natural_key
from ..io.tiff import describe_tiff, iter_tiff_blocks, resolution_keywords
from ..progress import progress
from . import rigid

POOR_MATCH = 0.3  # a pair whose overlap NCC after alignment is below this gets a warning
NO_MATCH = 0.1  # ... and below this it is not trusted: the section is left where it is


def add_parser(subparsers):
    p = subparsers.add_parser(
        "align", help="rigidly align serial sections (rotation + translation) into a z-stack",
        description="Align serial sections with rigid motions: each section is registered to "
        "the previous one (rotation from the Fourier magnitudes, shift by phase correlation, "
        "then subpixel refinement on the intensities), the motions are chained to a reference "
        "section and each section is resampled once (bilinear, same data type, 0 where "
        "nothing maps). Sections of different sizes are centred on a common canvas (the "
        "largest width and height) first. Sign convention of the transforms table: a "
        "section is turned by angle_deg about the canvas centre, counter-clockwise as "
        "displayed (y down) for a positive angle, then moved by dx to the right and dy "
        "down (pixels); z counts from 0.",
        epilog="example: neurostation align sections.tif -o aligned.tif --transforms "
        "transforms.tsv --reference middle --max-rotation 20 --jobs 4",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="one multi-page TIFF z-stack (ZYX, grey or RGB), or one 2D TIFF per "
                   "section, sorted naturally by name (section_2 before section_10)")
    p.add_argument("-o", "--output", required=True,
                   help="aligned z-stack to write (TIFF, ZYX; voxel size kept from the input)")
    p.add_argument("--transforms", required=True, metavar="TSV",
                   help="write each section's applied transform here: z, dx, dy (pixels), "
                   "angle_deg (counter-clockwise positive)")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="names of the inputs, used for sorting sections (Galaxy element "
                   "identifiers)")
    p.add_argument("--reference", choices=("first", "middle"), default="first",
                   help="section that stays in place: the first (default) or the middle one "
                   "(number of sections // 2), which halves the drift at the ends")
    p.add_argument("--max-rotation", type=float, default=30.0, metavar="DEG",
                   help="largest rotation between neighbouring sections, in degrees, up to "
                   "180 (default 30)")
    add_parallel_arguments(p)
    p.set_defaults(func=run)
    return p


class Sections:
    """The sections in order, from one z-stack TIFF or one 2D TIFF each, read one at a time
    and centred on the common canvas. Small and picklable: pool workers read their own."""

    def __init__(self, inputs, names=None):
        if names and len(names) != len(inputs):
            raise UserError(f"--names gives {len(names)} names for {len(inputs)} inputs; give "
                            "one name per input, in the same order")
        names = list(names) if names else [os.path.basename(p) for p in inputs]
        order = sorted(range(len(inputs)), key=lambda i: (natural_key(names[i]), inputs[i]))
        self.paths = [os.path.abspath(inputs[i]) for i in order]  # Dask workers run elsewhere
        self.names = [names[i] for i in order]
        facts = [self._describe(p, n) for p, n in zip(self.paths, self.names)]
        self.stack = None
        if len(self.paths) == 1:
            self._single(facts[0])
        else:
            self._slices(facts)
        self.facts = facts[0]
        self.dtype = np.dtype(facts[0]["dtype"])
        if self.dtype.kind not in "uif":
            raise UserError(f"{self.names[0]} holds {self.dtype.name} pixels; align takes "
                            "integer or floating-point images")
        self.canvas = tuple(max(s[i] for s in self.shapes) for i in range(2))

    @staticmethod
    def _describe(path, name):
        kind = detect_format(path)
        if kind != "tiff":
            raise UserError(f"{name} is a {kind} input; align takes TIFF images (one z-stack, "
                            "or one 2D image per section)")
        facts = describe_tiff(path)
        facts["axes"] = facts["axes"].upper().replace("Q", "Z").replace("I", "Z")
        samples = facts["shape"][-1] if facts["axes"].endswith("S") else 1
        if facts["axes"] not in ("YX", "YXS", "ZYX", "ZYXS") or samples not in (1, 3):
            raise UserError(f"{name} has axes {facts['axes']} and shape {facts['shape']}; align "
                            "takes a z-stack (ZYX) or 2D sections (YX), grey or RGB")
        facts["samples"] = samples
        return facts

    def _single(self, facts):
        name = self.names[0]
        count = facts["shape"][0] if facts["axes"].startswith("Z") else 1
        if count < 2:
            raise UserError(f"{name} holds a single section; nothing to align: give a z-stack "
                            "or two or more section images")
        self.stack = TiffStack(self.paths[0], name)
        self.shapes = [tuple(facts["shape"][1:3])] * count
        self.samples = facts["samples"]

    def _slices(self, facts):
        first, name0 = facts[0], self.names[0]
        for f, name in zip(facts, self.names):
            if f["axes"].startswith("Z"):
                raise UserError(f"{name} is a stack of {f['shape'][0]} planes; give either one "
                                "z-stack or one 2D image per section")
            if f["dtype"] != first["dtype"]:
                raise UserError(f"sections differ in data type: {name0} is {first['dtype']} "
                                f"but {name} is {f['dtype']}; convert them to one type first")
            if f["samples"] != first["samples"]:
                raise UserError(f"sections differ in colour: {name0} has {first['samples']} "
                                f"samples per pixel but {name} has {f['samples']}")
        self.shapes = [tuple(f["shape"][:2]) for f in facts]
        self.samples = first["samples"]

    def __len__(self):
        return len(self.shapes)

    def label(self, z):
        """How messages name section z: its number, and its name when it has its own file."""
        return f"{z}" if self.stack is not None else f"{z} ({self.names[z]})"

    def place(self, z, plane):
        """Plane z centred on the canvas (zero padded) and the mask of its pixels."""
        h, w = self.shapes[z]
        plane = plane.reshape((h, w) + ((self.samples,) if self.samples > 1 else ()))
        if (h, w) == self.canvas:
            return plane, np.ones(self.canvas, bool)
        r0, c0 = (self.canvas[0] - h) // 2, (self.canvas[1] - w) // 2
        out = np.zeros(self.canvas + plane.shape[2:], plane.dtype)
        out[r0:r0 + h, c0:c0 + w] = plane
        mask = np.zeros(self.canvas, bool)
        mask[r0:r0 + h, c0:c0 + w] = True
        return out, mask

    def read(self, z):
        """Section z on the canvas (random access, for the pool workers)."""
        if self.stack is None:
            return self.place(z, next(iter_tiff_blocks(self.paths[z])))
        h, w = self.shapes[z]
        xyzc = self.stack.read(Box((0, 0, z), (w, h, z + 1)))
        return self.place(z, np.transpose(xyzc[:, :, 0, :], (1, 0, 2)))

    def stream(self):
        """Every section on the canvas, in order, reading one plane at a time."""
        if self.stack is None:
            planes = (next(iter_tiff_blocks(p)) for p in self.paths)
        else:  # blocks are pages, or the whole series when it is stored in one page
            tail = self.shapes[0] + ((self.samples,) if self.samples > 1 else ())
            planes = (p for b in iter_tiff_blocks(self.paths[0]) for p in b.reshape((-1,) + tail))
        for z, plane in enumerate(planes):
            yield self.place(z, plane)


def _grey(image):
    return (image.mean(axis=2) if image.ndim == 3 else image).astype(np.float32)


def register_pair(task):
    """(z, matrix taking section z onto section z-1, NCC) for one pair, in a pool worker."""
    sections, z, max_rotation = task
    fixed, fmask = sections.read(z - 1)
    moving, mmask = sections.read(z)
    m, score = rigid.register(_grey(fixed), fmask, _grey(moving), mmask, max_rotation)
    return z, m, score


def chain(pairwise, reference):
    """Matrices taking every section onto the reference section, from the matrices taking
    section z onto section z-1 (pairwise[z], z >= 1)."""
    n = len(pairwise) + 1
    out = [None] * n
    out[reference] = np.eye(3)
    for z in range(reference + 1, n):
        out[z] = out[z - 1] @ pairwise[z]
    for z in range(reference - 1, -1, -1):
        out[z] = out[z + 1] @ np.linalg.inv(pairwise[z + 1])
    return out


def write_transforms(path, rows):
    """The table z, dx, dy, angle_deg: the transform applied to each section."""
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write("z\tdx\tdy\tangle_deg\n")
            for z, (angle, dx, dy) in enumerate(rows):
                dx, dy, angle = (round(v, 3) + 0.0 for v in (dx, dy, angle))  # no "-0.000"
                out.write(f"{z}\t{dx:.3f}\t{dy:.3f}\t{angle:.3f}\n")
    except OSError as exc:
        raise UserError(f"cannot write --transforms {path}: {exc}") from None


def write_aligned(path, sections, matrices):
    """Resample each section once with its matrix and append it to the output stack."""
    shape = (len(sections),) + sections.canvas + ((3,) if sections.samples == 3 else ())
    keywords, extra = resolution_keywords(sections.facts["voxel_size"], sections.facts["voxel_unit"])
    colour = {"photometric": "rgb"} if sections.samples == 3 else {"photometric": "minisblack"}
    axes = "ZYXS" if sections.samples == 3 else "ZYX"
    pages = (rigid.apply(image, m) for (image, _), m in zip(sections.stream(), matrices))
    big = np.prod(shape) * sections.dtype.itemsize > 2**32 - 2**25
    try:
        with tifffile.TiffWriter(path, bigtiff=big) as tif:
            tif.write(progress(pages, total=len(sections), desc="writing aligned sections"),
                      shape=shape, dtype=sections.dtype, metadata={"axes": axes, **extra},
                      **colour, **keywords)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from None


def run(args):
    jobs = resolve_jobs(args.jobs)
    if not 0 < args.max_rotation <= 180:
        raise UserError(f"--max-rotation must be in (0, 180] degrees, got {args.max_rotation:g}")
    sections = Sections(args.inputs, args.names)
    n = len(sections)
    reference = 0 if args.reference == "first" else n // 2
    tasks = [(sections, z, args.max_rotation) for z in range(1, n)]
    pairwise, scores = {}, {}
    for z, m, score in run_tasks(register_pair, tasks, jobs, desc="registering sections"):
        pairwise[z], scores[z] = m, score
    for z in sorted(z for z in scores if scores[z] < POOR_MATCH):
        pair = f"sections {sections.label(z - 1)} and {sections.label(z)}"
        if scores[z] < NO_MATCH:
            pairwise[z] = np.eye(3)
            print(f"warning: {pair} do not match (NCC {scores[z]:.2f}, blank or damaged?); "
                  f"section {z} is kept in place relative to section {z - 1}", file=sys.stderr)
        else:
            print(f"warning: {pair} match poorly after alignment (NCC {scores[z]:.2f}); check "
                  "them", file=sys.stderr)
    matrices = chain(pairwise, reference)
    centre = rigid.centre(sections.canvas)
    rows = [rigid.params(m, centre) for m in matrices]
    write_aligned(args.output, sections, matrices)
    write_transforms(args.transforms, rows)
    height, width = sections.canvas
    move = max(np.hypot(dx, dy) for _, dx, dy in rows)
    turn = max(abs(a) for a, _, _ in rows)
    print(f"aligned {n} sections on a {width} x {height} px canvas (x, y) to section "
          f"{reference}; largest shift {move:.1f} px, largest rotation {turn:.2f} degrees",
          file=sys.stderr)
