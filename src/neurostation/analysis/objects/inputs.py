"""Label and intensity volumes as box sources for the object commands: opened with the
viewer's readers, checked (integer labels, one channel, same shape), voxel size resolved,
and tiled into boxes small enough to hold with their temporaries."""

from ...chunks.pool import add_parallel_arguments
from ...errors import UserError
from ...units import UNIT_NM, convert, normalize_unit, parse_xyz
from ...visualize.project import box_size, region_boxes
from ...visualize.sources import open_volume_source

# Voxels of one box (the per-voxel temporaries are a few dozen bytes each).
BOX_VOXELS = 1 << 20


def add_common_options(p):
    """--voxel-size, --unit, --jobs and --scheduler, shared by measure and adjacency."""
    p.add_argument("--unit", default="um", choices=sorted(UNIT_NM),
                   help="length unit of the physical columns (default um)")
    p.add_argument("--voxel-size", metavar="X,Y,Z",
                   help="voxel size in --unit, for inputs that record none (overrides the file's)")
    add_parallel_arguments(p)


def open_labels(path, workdir, name=None, mip=0):
    """A label volume (scale `mip` of a precomputed one) as a box source; refuses non-integer
    data and several channels."""
    source = open_volume_source(path, workdir, mip, name)
    if source.dtype.kind not in "iu":
        raise UserError(f"{source.name} holds {source.dtype} values; a label volume holds "
                        "integers (0 = background, one number per object)")
    if source.channels != 1:
        raise UserError(f"{source.name} has {source.channels} channels; a label volume has one")
    return source


def open_intensity(path, workdir, labels, name=None):
    """An intensity volume on the grid of `labels`, as a box source (one channel)."""
    source = open_volume_source(path, workdir, 0, name)
    if source.shape != labels.shape:
        raise UserError(f"the intensity image {source.name} is {'x'.join(map(str, source.shape))} "
                        f"voxels but the label image {labels.name} is "
                        f"{'x'.join(map(str, labels.shape))} (x, y, z): they must have the same shape")
    if source.channels != 1:
        raise UserError(f"the intensity image {source.name} has {source.channels} channels; "
                        "give a single-channel image")
    return source


def voxel_size(source, given, unit):
    """The voxel size (x, y, z) in `unit`: --voxel-size when given, else the input's own."""
    if given:
        return parse_xyz(given)
    if source.voxel_nm is None:
        raise UserError(f"{source.name} records no voxel size; give it with --voxel-size X,Y,Z "
                        f"(in {unit})")
    return convert(source.voxel_nm, "nm", normalize_unit(unit))


def label_boxes(source):
    """Boxes tiling the volume: whole chunks, at most BOX_VOXELS voxels each."""
    return region_boxes((0, 0, 0), source.shape, box_shape(source))


def box_shape(source):
    return box_size(source.chunk, source.shape, BOX_VOXELS)


def read_labels(source, box):
    """The (x, y, z) labels of a box; negative values are refused."""
    data = source.read(box)[..., 0]
    if data.dtype.kind == "i" and data.size and data.min() < 0:
        raise UserError(f"{source.name} holds negative values; labels are 0 (background) or "
                        "positive object numbers")
    return data
