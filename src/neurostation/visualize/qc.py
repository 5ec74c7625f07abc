"""`neurostation qc`: quality-control pictures of a volume — projections, orthogonal slices,
checkerboard of two volumes, stitching tiles and seams, intensity histogram — as one PNG with
a scale bar in physical units and a caption. Volumes are read box by box (memory: a box and
the picture), so they may be larger than memory."""

import shutil
import tempfile

from ..chunks.pool import add_parallel_arguments, resolve_jobs
from ..errors import UserError
from ..io.outputs import staged_file
from .figure import HEIGHT, WIDTH
from .histogram import histogram_view
from .tiles import tiles_view
from .panels import check_same_grid, checkerboard_view, projection_view, slices_view
from .sources import check_channel, open_volume_source

KINDS = ("projection", "slices", "checkerboard", "tiles", "histogram")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "qc", help="make a QC picture of a volume (projections, slices, checkerboard, tiles, "
        "histogram)",
        description="Make a quality-control PNG of a volume (TIFF, OME-TIFF, NIfTI-1, "
        "precomputed folder, URL or JSON reference): projection = max or mean intensity "
        "projections along z, y and x (xy, xz, yz panels); slices = the three orthogonal slices "
        "through a voxel; checkerboard = slices of two volumes on one grid in alternating squares "
        "(registration QC); tiles = a stitched mosaic section with the tile outlines and overlaps "
        "from stitch's positions.tsv; histogram = intensity histogram of every voxel. Panels keep "
        "the physical aspect of the voxels; a scale bar in nm/µm/mm and a caption are drawn. "
        f"The picture is an RGB PNG of {WIDTH} x {HEIGHT} pixels. Every voxel is read, box by "
        "box: a panel larger than the picture shows one pixel per block of voxels (max or mean "
        "of the block, as the kind asks); --mip reads a coarser scale of a precomputed pyramid "
        "instead, which is faster.",
        epilog="example: neurostation qc projection ./volume --labels ./labels -o mip.png",
    )
    p.add_argument("kind", choices=KINDS, help="the picture to make")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="the volume (checkerboard: two volumes on the same grid)")
    p.add_argument("-o", "--output", required=True, help="the PNG to write")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="names of the inputs shown in the caption (default: their file names)")
    p.add_argument("--projection", choices=("max", "mean"), default="max",
                   help="projection: maximum (default) or mean intensity")
    p.add_argument("--labels", help="projection, slices: a label volume on the same grid; the "
                   "label boundaries are drawn in a colour per label")
    p.add_argument("--labels-name", help="name of the label volume in the caption")
    p.add_argument("--position", help="slices, checkerboard: voxel x,y,z the slices go through "
                   "(default: the centre voxel)")
    p.add_argument("--squares", type=int, default=8,
                   help="checkerboard: squares along the longer side of each panel (default 8)")
    p.add_argument("--positions", help="tiles: positions.tsv of `neurostation stitch` "
                   "(columns [section] tile row col x y)")
    p.add_argument("--section", type=int, default=0, help="tiles: section (z) to show (default 0)")
    p.add_argument("--tile-size", help="tiles: W,H of a tile in pixels (default: from the "
                   "mosaic's size and the farthest tile)")
    p.add_argument("--bins", type=int, default=256, help="histogram: number of equal bins "
                   "between the smallest and largest value (default 256)")
    p.add_argument("--log", action="store_true", help="histogram: log scale for the counts")
    p.add_argument("--channel", type=int, default=0, help="channel of a multi-channel volume "
                   "(default 0)")
    p.add_argument("--mip", type=int, default=0, help="scale of a precomputed volume to read "
                   "(0 = full resolution, the default)")
    add_parallel_arguments(p)
    p.set_defaults(func=run)
    return p


def check_options(args):
    """Refuse inputs and options that do not fit the kind, before reading anything."""
    wanted = 2 if args.kind == "checkerboard" else 1
    if len(args.inputs) != wanted:
        raise UserError(f"qc {args.kind} takes {wanted} input volume(s), got {len(args.inputs)}")
    if args.names and len(args.names) != len(args.inputs):
        raise UserError(f"--names gives {len(args.names)} names for {len(args.inputs)} inputs")
    if args.labels and args.kind not in ("projection", "slices"):
        raise UserError("--labels applies to qc projection and qc slices")
    if args.kind == "tiles" and not args.positions:
        raise UserError("qc tiles needs --positions (the positions.tsv written by stitch)")
    if args.squares < 1:
        raise UserError(f"--squares must be at least 1, got {args.squares}")


def draw(args, sources, labels, path, jobs):
    """Make the picture of the chosen kind at `path`."""
    source = sources[0]
    if args.kind == "projection":
        projection_view(source, path, args.projection, labels, jobs, args.channel)
    elif args.kind == "slices":
        slices_view(source, path, args.position, labels, jobs, args.channel)
    elif args.kind == "checkerboard":
        checkerboard_view(source, sources[1], path, args.position, args.squares, jobs, args.channel)
    elif args.kind == "tiles":
        tiles_view(source, path, args.positions, args.section, args.tile_size, jobs, args.channel)
    else:
        histogram_view(source, path, args.bins, args.log, jobs, args.channel)


def run(args):
    check_options(args)
    jobs = resolve_jobs(args.jobs)
    names = args.names or [None] * len(args.inputs)
    workdir = tempfile.mkdtemp(prefix="neurostation-qc-")
    try:
        sources = [open_volume_source(p, workdir, args.mip, n) for p, n in zip(args.inputs, names)]
        for source in sources:
            check_channel(source, args.channel)
        labels = None
        if args.labels:
            labels = open_volume_source(args.labels, workdir, args.mip, args.labels_name)
            if labels.dtype.kind not in "iu":
                raise UserError(f"--labels {labels.name} holds {labels.dtype} values; a label "
                                "volume holds integers")
            check_same_grid(sources[0], labels, "image and its labels")
        with staged_file(args.output, ".png") as temp:
            draw(args, sources, labels, temp, jobs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote the {args.kind} picture of {', '.join(s.name for s in sources)} to {args.output}")
