"""`neurostation stitch`: 2D TIFF tiles of a grid mosaic -> one registered, blended mosaic.

Neighbouring tiles are registered on their overlaps (robust NCC search, then subpixel
correlation), unreliable pairs are rejected, a global least-squares solve places every tile,
and tiles are feather-blended. Serial sections are stitched one at a time and stacked on a
common canvas. Registration reads only the overlap windows of the tiles. The mosaic is a TIFF
(blended a section at a time) or a Neuroglancer precomputed volume with its pyramid, blended
box by box (`mosaic_volume.py`; memory bounded by the box). The algorithms live in `mosaic.py`.
"""

import csv
import os
import re
import sys

import numpy as np
import tifffile

from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..io.detect import detect_format
from ..io.outputs import check_tiff_options, output_format
from ..io.precomputed import ENCODINGS, check_writable, to_url
from ..io.sources import natural_key
from ..io.tiff import describe_tiff, resolution_keywords
from ..progress import progress
from ..units import UNIT_NM, convert, normalize_unit
from . import mosaic
from .mosaic_volume import write_mosaic_volume
from .tiles import TileFile, about, read_tile
from .volume import check_storable, write_reference

ORDERS = ("row-major", "snake")
FORMATS = ("tiff", "precomputed")
_KINDS = {"nifti": "NIfTI file", "precomputed": "precomputed volume",
          "reference": "volume reference"}


def add_parser(subparsers):
    p = subparsers.add_parser(
        "stitch", help="stitch a grid of overlapping 2D tiles into one mosaic",
        description="Register the overlapping 2D TIFF tiles of a grid mosaic to each other "
        "(subpixel), place them by a global least-squares fit and blend them into one TIFF, "
        "or into a Neuroglancer precomputed volume with its resolution pyramid (a folder or a "
        "file://, s3:// or gs:// URL; for big mosaics: blended box by box, memory bounded by "
        "a box, not the mosaic; an interrupted run resumes when re-run with the same arguments). "
        "Unreliable tile pairs (blank or featureless overlaps) are rejected; a tile without "
        "any reliable pair keeps its nominal offset to its neighbours. Tiles are taken in "
        "natural order of their names (tile_2 before tile_10). Writes the mosaic, the tile "
        "positions (x, y of each tile's top-left pixel in the mosaic) and optionally a "
        "quality table of the tile pairs. Rows, columns and sections count from 0.",
        epilog="example: neurostation stitch tile_*.tif --grid 3x4 --overlap 0.1 "
        "-o mosaic.tif --positions positions.tsv --edges edges.tsv --order snake; a big "
        "mosaic as a volume: neurostation stitch sec*_tile_*.tif --grid 8x8 --overlap 0.1 --sections 40 "
        "-o s3://bucket/brain1 --positions positions.tsv --voxel-size 0.5,0.5,50 "
        "--voxel-unit um --jobs 8",
    )
    p.add_argument("tiles", nargs="+", metavar="TILE", help="2D TIFF tiles, one per file")
    p.add_argument("--grid", required=True, metavar="ROWSxCOLS",
                   help="tiles per section as rows x columns, e.g. 3x4 (3 rows of 4 tiles)")
    p.add_argument("--overlap", required=True, type=float, metavar="F",
                   help="nominal overlap of neighbouring tiles as a fraction of the tile "
                   "size, in (0, 0.5], e.g. 0.1 for 10%%")
    p.add_argument("-o", "--output", required=True,
                   help="mosaic to write: a .tif/.tiff file, or a precomputed volume (a folder, "
                   "or a file://, s3:// or gs:// URL)")
    p.add_argument("--format", choices=FORMATS,
                   help="output kind (default: tiff for a name ending in .tif or .tiff, else "
                   "precomputed)")
    p.add_argument("--positions", required=True, metavar="TSV",
                   help="write tile positions here: tile, row, col, x, y (pixels)")
    p.add_argument("--edges", metavar="TSV",
                   help="write the tile-pair table here: tile_a, tile_b, dx, dy (b's "
                   "displacement from a, pixels), score (NCC of the overlap), accepted")
    p.add_argument("--order", choices=ORDERS, default="row-major",
                   help="how the sorted tiles fill the grid: row by row, left to right "
                   "(row-major, default) or serpentine, every other row right to left (snake)")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="a name per tile, in the order of the tiles (e.g. Galaxy element "
                   "identifiers); tiles are sorted and reported by these names")
    p.add_argument("--stage-positions", metavar="TSV",
                   help="nominal tile positions from the microscope: a table with columns "
                   "tile, x, y (pixels), overriding the grid's nominal positions")
    p.add_argument("--sections", type=int, default=1, metavar="N",
                   help="the tiles are N serial sections of one grid each, in order; each is "
                   "stitched on its own and the mosaic is a z-stack (ZYX) (default 1)")
    p.add_argument("--max-shift", type=float, metavar="PX",
                   help="how far (pixels) a tile may be from its nominal offset to a "
                   "neighbour (default: half the overlap width; never more than 3/4 of it)")
    p.add_argument("--min-score", type=float, metavar="S",
                   help="accept tile pairs whose overlap NCC is at least S (default: "
                   "data-driven, from the scores of all pairs)")
    p.add_argument("--voxel-size", metavar="X,Y[,Z]",
                   help="pixel size (and section spacing), overriding the first tile's")
    p.add_argument("--voxel-unit", default="nm", choices=sorted(UNIT_NM),
                   help="unit of --voxel-size (default nm)")
    p.add_argument("--chunk-size", metavar="X,Y,Z",
                   help="precomputed: chunk size in voxels (default 64,64,64, or 128,128,64 "
                   "for anisotropic voxels; z is capped at the number of sections)")
    p.add_argument("--encoding", choices=ENCODINGS[:2], default="raw",
                   help="precomputed: chunk encoding, raw (default) or jpeg (uint8, lossy)")
    p.add_argument("--levels", type=int,
                   help="precomputed: number of downsampled scales (default: until x and y "
                   "fit in one chunk)")
    p.add_argument("--reference", metavar="JSON",
                   help="precomputed: also write a JSON reference {\"url\": ...} to the volume here")
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="image")
    return p


def parse_grid(text):
    """'3x4' -> (3 rows, 4 columns)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match or not all(int(n) > 0 for n in match.groups()):
        raise UserError(f"--grid must be ROWSxCOLS with positive whole numbers (e.g. 3x4), "
                        f"got {text!r}")
    return int(match.group(1)), int(match.group(2))


def parse_voxel_size(text):
    """'X,Y' or 'X,Y,Z' -> (x, y, z or None), positive numbers."""
    try:
        values = tuple(float(p) for p in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) not in (2, 3):
        raise UserError(f"--voxel-size must be X,Y or X,Y,Z (e.g. 0.65,0.65), got {text!r}")
    if not all(v > 0 for v in values):
        raise UserError(f"--voxel-size values must be positive, got {text!r}")
    return values + (None,) * (3 - len(values))


def _check_options(args):
    rows, cols = parse_grid(args.grid)
    if not 0 < args.overlap <= 0.5:
        raise UserError(f"--overlap must be a fraction in (0, 0.5], e.g. 0.1 for 10%; "
                        f"got {args.overlap:g}")
    if args.sections < 1:
        raise UserError(f"--sections must be 1 or more, got {args.sections}")
    if args.max_shift is not None and args.max_shift <= 0:
        raise UserError(f"--max-shift must be a positive number of pixels, got {args.max_shift:g}")
    if args.voxel_size:
        parse_voxel_size(args.voxel_size)
    if args.min_score is not None and not -1 <= args.min_score <= 1:
        raise UserError(f"--min-score is a correlation in [-1, 1], got {args.min_score:g}")
    check_tiff_options(args)
    return rows, cols


def order_tiles(paths, names=None):
    """[(name, absolute path)] in natural order of the names (default: the file names); absolute
    because Dask workers read the tiles in a working folder not ours."""
    if names is None:
        names = [os.path.basename(p) for p in paths]
    elif len(names) != len(paths):
        raise UserError(f"--names gives {len(names)} names for {len(paths)} tiles; give one "
                        "name per tile, in the same order")
    else:
        seen = set()
        for name in names:
            if name in seen:
                raise UserError(f"--names has {name!r} more than once; every tile needs its "
                                "own name")
            seen.add(name)
    return sorted(zip(names, map(os.path.abspath, paths)),
                  key=lambda t: (natural_key(t[0]), t[1]))


def _describe_tile(name, path):
    try:
        kind = detect_format(path)
        if kind != "tiff":
            raise UserError(f"{os.path.basename(path)} is a {_KINDS.get(kind, kind)}; stitch "
                            "takes 2D TIFF tiles")
        facts = describe_tiff(path)
    except UserError as exc:
        raise UserError(f"{about(name, path)}{exc}") from None
    shape = tuple(n for n in facts["shape"] if n != 1)
    if len(shape) != 2:
        raise UserError(f"tile {name} has axes {facts['axes']} and shape {facts['shape']}; "
                        "stitch takes single-plane 2D tiles, one file per tile")
    return shape, facts


def check_tiles(tiles):
    """Header facts of every tile, before any pixel is read: all 2D, one size, one dtype.
    Returns (tile shape (h, w), dtype, facts of the first tile)."""
    first = None
    for name, path in tiles:
        shape, facts = _describe_tile(name, path)
        if first is None:
            first = (name, shape, facts)
            continue
        name0, shape0, facts0 = first
        if shape != shape0:
            raise UserError(f"tiles differ in size: {name0} is {shape0[1]} x {shape0[0]} px "
                            f"but {name} is {shape[1]} x {shape[0]} px (width x height); all "
                            "tiles must be the same size")
        if facts["dtype"] != facts0["dtype"]:
            raise UserError(f"tiles differ in data type: {name0} is {facts0['dtype']} but "
                            f"{name} is {facts['dtype']}; convert them to one type first")
    return first[1], np.dtype(first[2]["dtype"]), first[2]


def read_stage_positions(path, names):
    """{tile name: (x, y)} from a table with a header naming columns tile, x and y."""
    label = f"--stage-positions {os.path.basename(path)}"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip() and not line.startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {label}: {exc}") from None
    reader = csv.DictReader(lines, delimiter="\t")
    if not reader.fieldnames or not {"tile", "x", "y"} <= set(reader.fieldnames):
        raise UserError(f"{label} needs a tab-separated header with columns tile, x, y; got "
                        f"{', '.join(reader.fieldnames or []) or 'nothing'}")
    table = {}
    for number, row in enumerate(reader, start=2):
        try:
            table[row["tile"]] = (float(row["x"]), float(row["y"]))
        except (TypeError, ValueError):
            raise UserError(f"{label} row {number}: x and y must be numbers, got "
                            f"{row['x']!r}, {row['y']!r}") from None
    missing = [n for n in names if n not in table]
    if missing:
        raise UserError(f"{label} has no row for tile {missing[0]}"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return {n: np.array(table[n]) for n in names}


class Section:
    """One grid of tiles: where each sits in the grid, nominally and as registered."""

    def __init__(self, index, tiles, rows, cols, order):
        self.index, self.tiles, self.grid = index, tiles, (rows, cols)
        self.cells = [mosaic.grid_cell(i, cols, order) for i in range(len(tiles))]
        self.positions, self.edges = None, []

    def nominal(self, tile_shape, overlap, stage):
        if stage is not None:
            return np.array([stage[name] for name, _ in self.tiles])
        grid = mosaic.grid_positions(*self.grid, tile_shape, overlap)
        return np.array([grid[cell] for cell in self.cells])

    def files(self, tile_shape):
        """The tiles as lazy files: registration then reads only their overlap windows."""
        return [TileFile(name, path, tile_shape) for name, path in self.tiles]

    def read(self, tile_shape):
        """The tiles' pixels, one tile at a time."""
        return (read_tile(name, path, tile_shape) for name, path in self.tiles)


def register_section(section, tile_shape, args, stage, jobs):
    """Measure, judge and solve one section; sets its positions and edges."""
    nominal = section.nominal(tile_shape, args.overlap, stage)
    pairs = mosaic.neighbour_pairs(section.cells)
    images = section.files(tile_shape)
    desc = "registering tile pairs" + (f" of section {section.index}" if args.sections > 1 else "")

    def mapper(func, tasks):
        return run_tasks(func, tasks, jobs, desc=desc)

    section.edges = mosaic.register_pairs(images, pairs, nominal, args.max_shift, mapper)
    mosaic.judge_edges(section.edges, args.min_score)
    section.positions = mosaic.solve_positions(len(images), section.edges, nominal)


def _report(section, sections):
    """Warn on stderr about rejected pairs and tiles placed without a reliable pair."""
    where = f" in section {section.index}" if sections > 1 else ""
    names = [name for name, _ in section.tiles]
    held = {i for e in section.edges if e.accepted for i in (e.a, e.b)}
    rejected = [e for e in section.edges if not e.accepted]
    if rejected:
        reasons = sorted({e.reason for e in rejected})
        print(f"warning: {len(rejected)} of {len(section.edges)} tile pairs{where} rejected "
              f"({'; '.join(reasons)})", file=sys.stderr)
    loose = [name for i, name in enumerate(names) if i not in held] if len(names) > 1 else []
    if loose:
        listed = ", ".join(loose[:10]) + (f" and {len(loose) - 10} more" if len(loose) > 10 else "")
        print(f"warning: no reliable pair for {listed}{where}; placed at nominal offsets to "
              "their neighbours", file=sys.stderr)


def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as out:
        for row in [header, *rows]:
            out.write("\t".join(row) + "\n")


def write_tables(sections, positions_path, edges_path):
    """positions.tsv (and edges.tsv): one row per tile (per pair); a section column first
    when there are several sections."""
    lead = ["section"] if len(sections) > 1 else []

    def first(s):
        return [str(s.index)] if lead else []

    _write_tsv(positions_path, lead + ["tile", "row", "col", "x", "y"], (
        first(s) + [name, str(r), str(c), f"{x:.3f}", f"{y:.3f}"]
        for s in sections for (name, _), (r, c), (x, y) in zip(s.tiles, s.cells, s.positions)))
    if edges_path:
        _write_tsv(edges_path, lead + ["tile_a", "tile_b", "dx", "dy", "score", "accepted"], (
            first(s) + [s.tiles[e.a][0], s.tiles[e.b][0], f"{e.shift[0]:.3f}",
                        f"{e.shift[1]:.3f}", f"{e.score:.4f}", "yes" if e.accepted else "no"]
            for s in sections for e in s.edges))


def _resolution(args, facts):
    """TIFF resolution keywords and metadata for the output's pixel size, if one is known."""
    if args.voxel_size:
        return resolution_keywords(parse_voxel_size(args.voxel_size), normalize_unit(args.voxel_unit))
    if facts["voxel_size"] is not None:
        return resolution_keywords(tuple(facts["voxel_size"][:2]) + (None,), facts["voxel_unit"])
    return {}, {}


def common_canvas(sections, tile_shape):
    """(height, width) holding every section's mosaic, top-left aligned."""
    shapes = [mosaic.canvas_shape(s.positions, tile_shape) for s in sections]
    return tuple(max(sh[i] for sh in shapes) for i in range(2))


def volume_voxel(args, facts, sections):
    """(size (x, y, z), unit, size in nm) of the volume's voxels: --voxel-size, else the
    first tile's pixel size, with the section spacing taken as the pixel size when unknown."""
    if args.voxel_size:
        size, unit = parse_voxel_size(args.voxel_size), normalize_unit(args.voxel_unit)
    elif facts["voxel_size"] is not None and None not in facts["voxel_size"][:2]:
        size, unit = tuple(facts["voxel_size"]) + (None,) * (3 - len(facts["voxel_size"])), \
            facts["voxel_unit"]
    else:
        print("warning: the tiles carry no pixel size; assuming 1,1,1 nm (give --voxel-size "
              "and --voxel-unit)", file=sys.stderr)
        size, unit = (1.0, 1.0, 1.0), "nm"
    if size[2] is None:
        if sections > 1:
            print(f"warning: no section spacing given; assuming the pixel size, {size[0]:g} "
                  f"{unit} (give --voxel-size X,Y,Z)", file=sys.stderr)
        size = (size[0], size[1], size[0])
    return size, unit, convert(size, unit, "nm")


def write_mosaic(path, sections, tile_shape, dtype, args, facts):
    """Blend section by section (one section's canvas and one tile in memory) onto a common
    canvas, top-left aligned; one section is a YX image, several a ZYX stack."""
    canvas = common_canvas(sections, tile_shape)
    keywords, extra = _resolution(args, facts)
    size = len(sections) * canvas[0] * canvas[1] * dtype.itemsize
    keywords["bigtiff"] = size > 2**32 - 2**25  # classic TIFF offsets stop at 4 GiB

    def pages():
        for s in progress(sections, desc="blending sections"):
            yield mosaic.blend(s.read(tile_shape), s.positions, canvas, dtype)

    try:
        if len(sections) == 1:
            tifffile.imwrite(path, next(pages()), metadata={"axes": "YX", **extra}, **keywords)
        else:
            tifffile.imwrite(path, pages(), shape=(len(sections),) + canvas, dtype=dtype,
                             metadata={"axes": "ZYX", **extra}, **keywords)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    return canvas


def run(args):
    rows, cols = _check_options(args)
    kind = output_format(args)
    url = to_url(args.output) if kind == "precomputed" else None
    tiles = order_tiles(args.tiles, args.names)
    per_section = rows * cols
    if len(tiles) != per_section * args.sections:
        raise UserError(f"got {len(tiles)} tiles but --grid {rows}x{cols} with "
                        f"{args.sections} section(s) needs {per_section * args.sections}")
    tile_shape, dtype, facts = check_tiles(tiles)
    if kind == "precomputed":
        check_storable(dtype, 1, args)  # before the registration, not after
        check_writable(url)
    stage = None
    if args.stage_positions:
        stage = read_stage_positions(args.stage_positions, [name for name, _ in tiles])
    sections = [Section(k, tiles[k * per_section:(k + 1) * per_section], rows, cols, args.order)
                for k in range(args.sections)]
    jobs = resolve_jobs(args.jobs)
    for section in sections:
        register_section(section, tile_shape, args, stage, jobs)
        _report(section, args.sections)
    write_tables(sections, args.positions, args.edges)
    if kind == "tiff":
        height, width = write_mosaic(args.output, sections, tile_shape, dtype, args, facts)
    else:
        height, width = common_canvas(sections, tile_shape)
        write_mosaic_volume(url, sections, tile_shape, dtype, (height, width),
                            volume_voxel(args, facts, len(sections)), args, jobs)
        if args.reference:
            write_reference(args.reference, url)
    accepted = sum(e.accepted for s in sections for e in s.edges)
    total = sum(len(s.edges) for s in sections)
    print(f"stitched {len(tiles)} tiles into {width} x {height} px (x, y)"
          + (f" x {len(sections)} sections" if len(sections) > 1 else "")
          + f"; {accepted} of {total} tile pairs accepted", file=sys.stderr)
