"""`neurostation mesh`: surface meshes of every object of a label volume, box by box, as
Neuroglancer precomputed meshes attached to a copy of the segmentation (the viewer shows
them) and as OBJ / PLY / STL files for chosen objects. Pieces of an object from neighbouring
boxes meet exactly (see analysis/objects/meshing.py); each object's pieces are then welded into
fragments of at most FRAGMENT_TRIANGLES triangles: one file for all but very large objects,
while memory stays bounded for objects spanning the whole volume.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np

from ..analysis.objects.inputs import label_boxes, open_labels
from ..analysis.objects.meshing import box_meshes, read_cells
from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..ingest.volume import write_volume
from ..io.detect import detect_format
from ..io.precomputed import RECORD, read_record, to_url, write_record
from ..processing.label import voxel_size
from ..units import UNIT_NM
from .mesh_files import EXPORT_FORMATS, decode_fragment, encode_fragment, weld, write_mesh

MESH_DIR = "mesh"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "mesh", help="build surface meshes of the objects of a label volume",
        description="Marching-cubes surface meshes (scikit-image, Lewiner) of every object of a "
        "label volume (TIFF/OME-TIFF, NIfTI, precomputed segmentation, URL or JSON reference), "
        "made box by box with a 1-voxel overlap so the pieces meet exactly, in physical units "
        "(nm, Neuroglancer's coordinates: voxel i spans offset + i to offset + i + 1 voxels). "
        "-o writes a precomputed segmentation with the meshes attached (legacy format: each "
        "object's pieces welded into one fragment, several for objects of more than "
        f"{FRAGMENT_TRIANGLES:,} triangles), --export writes one OBJ, PLY or STL file per "
        "object. --reduction simplifies (zmesh's quadric simplifier) keeping the pieces' "
        "rims, so they still meet.",
        epilog="example: neurostation mesh ./labels -o ./labels_meshed --export meshes "
        "--labels 1,5,7 --export-format stl --reduction 4",
    )
    p.add_argument("input", help="label volume: TIFF/OME-TIFF, NIfTI, precomputed folder, URL "
                   "or JSON reference")
    p.add_argument("-o", "--output", metavar="FOLDER",
                   help="precomputed segmentation to write (a local folder, new or empty): a "
                   "copy of a precomputed input, or the labels of a file, with the meshes")
    p.add_argument("--export", metavar="FOLDER",
                   help="write one mesh file per object here (label_<id>.<format>)")
    p.add_argument("--export-format", choices=EXPORT_FORMATS, default="obj",
                   help="format of the exported files (default obj; ply is ASCII, stl binary)")
    p.add_argument("--labels", metavar="ID,ID,...",
                   help="objects to export (default: every object)")
    p.add_argument("--reduction", type=int, default=0, metavar="N",
                   help="simplify the meshes to about 1/N of their triangles (default 0: the "
                   "exact marching-cubes surface)")
    p.add_argument("--voxel-size", metavar="X,Y,Z",
                   help="voxel size for files that record none (precomputed volumes keep theirs)")
    p.add_argument("--voxel-unit", default="nm", choices=sorted(UNIT_NM),
                   help="unit of --voxel-size (default nm)")
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="segmentation", chunk_size=None, levels=None,
                   encoding="raw")
    return p


# Objects welded per task at most (the last step runs over batches of objects, not boxes).
WELD_BATCH = 256
# Triangles welded into one fragment at most: an object's pieces beyond it go to further
# fragments, so welding memory stays bounded (some 30 MB of mesh) however large the object.
FRAGMENT_TRIANGLES = 1_000_000


class MeshBox:
    """Mesh one box and write a piece (legacy fragment encoding) per object found in it;
    returns [(label, piece name, triangles)]. Picklable, for the process pool."""

    def __init__(self, source, folder, voxel_nm, offset, reduction):
        self.source, self.folder, self.reduction = source, folder, reduction
        self.voxel_nm, self.offset = np.asarray(voxel_nm, np.float64), np.asarray(offset, np.float64)

    def __call__(self, box):
        cells, origin = read_cells(self.source, box)
        found = []
        for label, vertices, faces in box_meshes(cells, origin, self.reduction):
            name = f"{label}:{box.key}"
            nm = ((vertices + self.offset + 0.5) * self.voxel_nm).astype(np.float32)
            with open(os.path.join(self.folder, name), "wb") as out:
                out.write(encode_fragment(nm, faces))
            found.append((label, name, len(faces)))
        return found


def parse_labels(text):
    """--labels 1,5,7 -> {1, 5, 7}; None for every object."""
    if text is None:
        return None
    try:
        labels = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        labels = set()
    if not labels or min(labels) <= 0:
        raise UserError(f"--labels must be object numbers above 0 separated by commas "
                        f"(e.g. 1,5,7), got {text!r}")
    return labels


def check_target(path, option):
    """A local folder that does not exist yet or is empty."""
    if path is None:
        return
    if "://" in str(path):
        raise UserError(f"{option} takes a local folder; {path} is a URL")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise UserError(f"{option} {path} exists and is not an empty folder; give a new one")
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UserError(f"{option} {path}: its parent folder does not exist")


def check_args(args):
    if not args.output and not args.export:
        raise UserError("nothing to write: give -o FOLDER (precomputed meshes) and/or "
                        "--export FOLDER (mesh files)")
    if args.reduction < 0:
        raise UserError(f"--reduction must be 0 (no simplification) or more, got {args.reduction}")
    if args.labels and not args.export:
        raise UserError("--labels chooses the objects to export; give --export FOLDER too")
    check_target(args.output, "-o")
    check_target(args.export, "--export")


def volume_frame(args, source):
    """(voxel size in nm, voxel offset, copy the input?) of the segmentation the meshes belong
    to: a local precomputed folder is copied and keeps its own; anything else is written anew."""
    copy = detect_format(args.input) == "precomputed" and os.path.isdir(args.input)
    if copy:
        if args.voxel_size:
            raise UserError(f"--voxel-size is for files that record none; {source.name} is a "
                            "precomputed volume with its own")
        return tuple(source.voxel_nm), source.offset, True
    voxel_nm, known = voxel_size(args, source)
    if not known:
        print("warning: the input carries no voxel size; assuming 1,1,1 nm (give --voxel-size "
              "and --voxel-unit)", file=sys.stderr)
    return voxel_nm, (0, 0, 0), False


class WeldObjects:
    """Weld pieces (vertices at equal positions merged): each group of an object's pieces into
    its legacy fragment `<id>:0:<group>` in `mesh_dir`, and all pieces of each chosen object
    (`wanted`, None: all) into its export file in `export_dir`; either folder may be None.
    Called with [(label, groups of piece names)]; picklable."""

    def __init__(self, pieces_dir, mesh_dir, export_dir, kind, wanted):
        self.pieces_dir, self.mesh_dir, self.export_dir = pieces_dir, mesh_dir, export_dir
        self.kind, self.wanted = kind, wanted

    def __call__(self, batch):
        for label, groups in batch:
            mesh = None  # the last fragment welded: the whole object when it has one
            if self.mesh_dir:
                for group, names in enumerate(groups):
                    mesh = self._weld(names)
                    path = os.path.join(self.mesh_dir, fragment_name(label, group))
                    with open(path, "wb") as out:
                        out.write(encode_fragment(*mesh))
            if self.export_dir and (self.wanted is None or label in self.wanted):
                if mesh is None or len(groups) > 1:  # an export file holds the whole object
                    mesh = self._weld([name for names in groups for name in names])
                write_mesh(os.path.join(self.export_dir, f"label_{label}.{self.kind}"), *mesh,
                           self.kind)

    def _weld(self, names):
        pieces = []
        for name in names:
            with open(os.path.join(self.pieces_dir, name), "rb") as handle:
                pieces.append(decode_fragment(handle.read()))
        return weld(pieces)


def fragment_name(label, group):
    """The file of an object's `group`-th welded fragment (its manifest is `<id>:0`)."""
    return f"{label}:0:{group}"


def fragment_groups(pieces):
    """An object's pieces [(name, triangles)] in groups of consecutive pieces of at most
    FRAGMENT_TRIANGLES triangles (a larger piece alone), one fragment each."""
    groups, total = [[]], 0
    for name, count in pieces:
        if groups[-1] and total + count > FRAGMENT_TRIANGLES:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += count
    return groups


def weld_objects(groups, task, jobs):
    """Run `task` (WeldObjects) over the objects' fragment groups: at most WELD_BATCH objects a
    task, at least 4 tasks a process to balance them."""
    items = sorted(groups.items())
    size = max(1, min(WELD_BATCH, -(-len(items) // (4 * jobs))))
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    for _ in run_tasks(task, batches, jobs, desc="welding objects"):
        pass


def attach_meshes(volume, folder, groups):
    """Manifests `<id>:0`, mesh/info and the `mesh` key of the segmentation's info."""
    for label, parts in groups.items():
        with open(os.path.join(folder, f"{label}:0"), "w", encoding="utf-8") as out:
            json.dump({"fragments": [fragment_name(label, group) for group in range(len(parts))]},
                      out)
    with open(os.path.join(folder, "info"), "w", encoding="utf-8") as out:
        json.dump({"@type": "neuroglancer_legacy_mesh"}, out)
    info_path = os.path.join(volume, "info")
    with open(info_path, encoding="utf-8") as handle:
        info = json.load(handle)
    info["mesh"] = MESH_DIR
    with open(info_path, "w", encoding="utf-8") as out:
        json.dump(info, out, indent=1)


def write_segmentation(args, source, volume, voxel_nm, copy, jobs):
    """The labels as a precomputed segmentation in `volume`: a copy of a precomputed folder
    (without its record and old meshes), else written from the file with its pyramid."""
    if copy:
        shutil.copytree(args.input, volume, dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if os.path.samefile(d, args.input)
                                                 and n in (RECORD, MESH_DIR)])
        return
    record = {"command": "mesh", "sources": [source.name]}
    write_volume(source, to_url(volume), voxel_nm, args, jobs, {"input": str(args.input)}, record)


def publish(temp, target):
    """Move a finished folder to its place (an empty folder there is replaced)."""
    if os.path.isdir(target):
        os.rmdir(target)
    shutil.move(temp, target)


def run(args):
    check_args(args)
    wanted = parse_labels(args.labels)
    jobs = resolve_jobs(args.jobs)
    parent = os.path.dirname(os.path.abspath(args.output or args.export))
    work = tempfile.mkdtemp(prefix=".neurostation-mesh-", dir=parent)
    try:
        source = open_labels(args.input, work)
        voxel_nm, offset, copy = volume_frame(args, source)
        volume, folder = os.path.join(work, "volume"), os.path.join(work, "pieces")
        os.makedirs(folder)
        pieces, triangles = {}, 0
        task = MeshBox(source, folder, voxel_nm, offset, args.reduction)
        for found in run_tasks(task, label_boxes(source), jobs, desc="meshing boxes"):
            for label, name, count in found:
                pieces.setdefault(label, []).append((name, count))
                triangles += count
        groups = {label: fragment_groups(sorted(named))  # boxes end in any order
                  for label, named in pieces.items()}
        if not pieces:
            raise UserError(f"{source.name} holds no object (every voxel is 0): nothing to mesh")
        missing = sorted((wanted or set()) - pieces.keys())
        if missing:
            raise UserError(f"--labels names {','.join(map(str, missing))}, not in "
                            f"{source.name}; its objects are {describe_labels(pieces)}")
        mesh_dir = os.path.join(volume, MESH_DIR) if args.output else None
        export_dir = os.path.join(work, "export") if args.export else None
        for made in (mesh_dir, export_dir):
            if made:
                os.makedirs(made)
        welded = groups if args.output or wanted is None else {k: groups[k] for k in wanted}
        weld_objects(welded, WeldObjects(folder, mesh_dir, export_dir, args.export_format,
                                         wanted), jobs)
        if args.output:
            write_segmentation(args, source, volume, voxel_nm, copy, jobs)
            attach_meshes(volume, mesh_dir, groups)
            kept = read_record(to_url(args.input if copy else volume)) or {}
            record = {k: v for k, v in kept.items() if k not in ("complete", "neurostation_version")}
            write_record(to_url(volume), **record, meshes={
                "objects": len(pieces), "triangles": triangles, "reduction": args.reduction,
                "source": source.name})
            publish(volume, args.output)
        if args.export:
            publish(export_dir, args.export)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"meshed {len(pieces)} objects: {triangles} triangles, {sum(map(len, pieces.values()))} "
          f"box pieces welded into {sum(map(len, groups.values()))} fragments")


def describe_labels(pieces):
    """The labels found, shortened when there are many."""
    labels = sorted(pieces)
    shown = ",".join(map(str, labels[:10]))
    return shown + (f",... ({len(labels)} in all)" if len(labels) > 10 else "")
