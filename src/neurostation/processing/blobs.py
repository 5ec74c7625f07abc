"""`neurostation blobs`: LoG / DoG spot detection on a volume of any size, box by box, with the
blob set of scikit-image's blob_log / blob_dog on the whole volume; optionally the spots
counted per object of a label image (e.g. nanoparticles per cell).

Boxes find the scale-space maxima whose centres they hold (scale_space.py); the candidates of
all boxes are then pruned together by skimage's own overlap rule, in skimage's order, so the
surviving set is the in-memory one. Memory: one box with its halo per process, plus the
candidate list (one row per local maximum above the threshold).
"""

import shutil
import sys
from collections import Counter

import numpy as np
import pandas as pd

from ..analysis.fmri.tables import write_frame
from ..analysis.objects.inputs import label_boxes, open_labels, read_labels
from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..io.outputs import staged
from ..io.sources import workdir
from ..units import UNIT_NM, convert
from ..visualize.sources import check_channel, open_volume_source
from .filter import sigma_voxels
from .label import voxel_size
from .scale_space import BoxCandidates, ScaleSpace, candidate_boxes

DEFAULTS = {"log": 0.2, "dog": 0.5}  # skimage's default thresholds
STACK_BUDGET = 128 << 20  # bytes of one box's scale-space stack with its halo (float64)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "blobs", help="detect spots (LoG / DoG blobs), optionally counted per object",
        description="Detect bright spots in a one-channel volume (TIFF, OME-TIFF, NIfTI, "
        "precomputed folder, URL or JSON reference) with scikit-image's blob_log (Laplacian of "
        "Gaussian) or blob_dog (difference of Gaussians), box by box with a halo wide enough "
        "for the largest sigma: the spots are those of skimage on the whole volume (same "
        "positions and sigmas, same overlap pruning). Sigmas in voxels or in a physical unit "
        "(divided by each axis' voxel size). The table has one row per spot: position in "
        "voxels and um, sigma and radius (sigma x sqrt(3), sqrt(2) for a 2D image) in um, the "
        "image value at the centre and the scale-space response. With --labels each spot gets "
        "the label at its centre and --counts lists the spots per object.",
        epilog="example: neurostation blobs particles.ome.tif -o spots.tsv --min-sigma 0.1 "
        "--max-sigma 0.4 --unit um --threshold 0.05 --labels cells.ome.tif --counts counts.tsv")
    p.add_argument("input", help="image: TIFF/OME-TIFF, NIfTI, precomputed folder, URL or JSON "
                   "reference")
    p.add_argument("-o", "--output", required=True, help="the spot table (TSV) to write")
    p.add_argument("--method", choices=("log", "dog"), default="log",
                   help="log: skimage blob_log (default); dog: skimage blob_dog")
    p.add_argument("--min-sigma", type=float, default=1.0,
                   help="smallest gaussian sigma, in --unit (default 1)")
    p.add_argument("--max-sigma", type=float, default=5.0,
                   help="largest gaussian sigma, in --unit (default 5)")
    p.add_argument("--unit", default="voxel", choices=["voxel"] + sorted(UNIT_NM),
                   help="unit of the sigmas: voxel (the same on every axis) or a physical unit, "
                   "divided by each axis' voxel size; default voxel")
    p.add_argument("--num-sigma", type=int, default=10,
                   help="log: number of sigmas from min to max (default 10)")
    p.add_argument("--log-scale", action="store_true",
                   help="log: space the sigmas evenly on a log scale (default linear)")
    p.add_argument("--sigma-ratio", type=float, default=1.6,
                   help="dog: ratio between successive sigmas (default 1.6)")
    p.add_argument("--threshold", type=float,
                   help="smallest scale-space response of a spot, in the units of skimage's "
                   "img_as_float (integer images scaled to 0..1 by their type's maximum); "
                   "default 0.2 (log) or 0.5 (dog)")
    p.add_argument("--overlap", type=float, default=0.5,
                   help="of two spots overlapping by more than this fraction the smaller one "
                   "is dropped (default 0.5)")
    p.add_argument("--channel", type=int, default=0, help="channel to search (default 0)")
    p.add_argument("--labels", metavar="LABELS",
                   help="label image on the same grid: each spot gets the label at its centre")
    p.add_argument("--counts", metavar="TSV",
                   help="with --labels: also write the spots per object (label, spots), every "
                   "object of the label image listed")
    p.add_argument("--voxel-size", metavar="X,Y,Z",
                   help="voxel size overriding the image's (needed for physical units when the "
                   "image records none)")
    p.add_argument("--voxel-unit", default="nm", choices=sorted(UNIT_NM),
                   help="unit of --voxel-size (default nm)")
    add_parallel_arguments(p)
    p.set_defaults(func=run)
    return p


def check_options(args):
    """Refuse parameters out of range before any work."""
    if args.threshold is None:
        args.threshold = DEFAULTS[args.method]
    if not args.min_sigma > 0:
        raise UserError(f"--min-sigma must be positive, got {args.min_sigma:g}")
    if args.min_sigma > args.max_sigma:
        raise UserError(f"--min-sigma {args.min_sigma:g} is larger than --max-sigma "
                        f"{args.max_sigma:g}")
    if args.method == "log" and args.num_sigma < 1:
        raise UserError(f"--num-sigma must be 1 or more, got {args.num_sigma}")
    if args.method == "dog" and not args.sigma_ratio > 1:
        raise UserError(f"--sigma-ratio must be larger than 1, got {args.sigma_ratio:g}")
    if not args.threshold > 0:
        raise UserError(f"--threshold must be positive, got {args.threshold:g}")
    if not 0 <= args.overlap <= 1:
        raise UserError(f"--overlap must be between 0 and 1, got {args.overlap:g}")
    if args.counts and not args.labels:
        raise UserError("--counts needs --labels: the label image whose objects get the spots")


def scale_space(args, source, voxel_nm):
    """The ScaleSpace of the options, sigmas per image axis ((z,) y, x) in voxels."""
    planar = source.shape[2] == 1
    low, high = (sigma_voxels(s, args.unit, voxel_nm, planar, o)
                 for s, o in ((args.min_sigma, "--min-sigma"), (args.max_sigma, "--max-sigma")))
    ndim = 2 if planar else 3
    return ScaleSpace(args.method, low[::-1][-ndim:], high[::-1][-ndim:], args.num_sigma,
                      args.sigma_ratio, args.log_scale, source.dtype)


def find_blobs(source, channel, space, threshold, overlap, jobs):
    """The surviving blobs: (x, y, z voxels, scale index, response, value) sorted by response,
    strongest first, after skimage's overlap pruning of all the boxes' candidates."""
    from skimage.feature.blob import _prune_blobs  # skimage's own rule (pinned 0.26)

    task = BoxCandidates(source, channel, space, threshold)
    halo = tuple(reversed(space.halo())) + (0,) * (3 - task.ndim)
    parts = list(run_tasks(task, candidate_boxes(source.shape, halo, len(space.sigmas),
                                                 STACK_BUDGET), jobs=jobs, desc="finding spots"))
    xyz, scale, response, value = (np.concatenate([p[i] for p in parts]) for i in range(4))
    # skimage's order: strongest first, ties in C order of ((z,) y, x, scale)
    order = np.lexsort((scale, xyz[:, 0], xyz[:, 1], xyz[:, 2], -response))
    xyz, scale, response, value = xyz[order], scale[order], response[order], value[order]
    if not len(xyz):
        return xyz, scale, response, value
    blobs = np.hstack([xyz[:, ::-1][:, 3 - task.ndim:].astype(space.float), space.sigmas[scale]])
    kept = _prune_blobs(blobs.copy(), overlap, sigma_dim=task.ndim)
    keep = np.zeros(len(blobs), bool)
    j = 0
    for i, row in enumerate(blobs):  # the kept rows are a subsequence of the candidates
        if j < len(kept) and np.array_equal(row, kept[j]):
            keep[i], j = True, j + 1
    return xyz[keep], scale[keep], response[keep], value[keep]


def spot_table(xyz, scale, response, value, space, voxel_um, ndim):
    """One row per spot: voxel and um positions, sigma and radius in um, value, response."""
    sigma_voxels_xyz = space.sigmas[scale][:, ::-1]  # (n, ndim) in x, y(, z) order
    sigma_um = (sigma_voxels_xyz * np.array(voxel_um[:ndim])).mean(axis=1)
    table = {"spot": np.arange(1, len(xyz) + 1)}
    for i, axis in enumerate("xyz"):
        table[axis] = xyz[:, i]
    for i, axis in enumerate("xyz"):
        table[f"{axis}_um"] = xyz[:, i] * voxel_um[i]
    table.update({"sigma_um": sigma_um, "radius_um": sigma_um * np.sqrt(ndim),
                  "intensity": value, "response": response})
    return pd.DataFrame(table)


class _LabelsAt:
    """Picklable task: for (box, spot rows, their x, y, z) -> (labels in the box, spot labels)."""

    def __init__(self, labels):
        self.labels = labels

    def __call__(self, item):
        box, rows, xyz = item
        data = read_labels(self.labels, box)
        local = (xyz - np.array(box.start)).T
        return np.unique(data), rows, data[tuple(local)]


def label_spots(labels, xyz, jobs):
    """(label at each spot's centre, {label: spots} over every object of the label image)."""
    boxes = label_boxes(labels)
    size = np.array(boxes[0].shape)
    index = {box.start: i for i, box in enumerate(boxes)}
    owner = np.array([index[tuple(int(v) for v in p // size * size)] for p in xyz], np.int64)
    items = [(box, np.flatnonzero(owner == i), xyz[owner == i]) for i, box in enumerate(boxes)]
    spot_labels = np.zeros(len(xyz), np.int64)
    present, counts = set(), Counter()
    for found, rows, values in run_tasks(_LabelsAt(labels), items, jobs=jobs,
                                         desc="labelling spots"):
        present.update(int(v) for v in found)
        spot_labels[rows] = values
        counts.update(int(v) for v in values)
    present.discard(0)
    return spot_labels, {label: counts.get(label, 0) for label in sorted(present)}


def open_inputs(args, tmp):
    """(image source, label source or None), checked: one channel picked, same grid."""
    source = open_volume_source(args.input, tmp)
    check_channel(source, args.channel)
    if not args.labels:
        return source, None
    labels = open_labels(args.labels, tmp)
    if labels.shape != source.shape:
        raise UserError(f"the label image {labels.name} is {'x'.join(map(str, labels.shape))} "
                        f"voxels but the image {source.name} is "
                        f"{'x'.join(map(str, source.shape))} (x, y, z): they must have the same "
                        "shape")
    return source, labels


def run(args):
    check_options(args)
    jobs = resolve_jobs(args.jobs)
    tmp = workdir()
    try:
        source, labels = open_inputs(args, tmp)
        voxel_nm, known = voxel_size(args, source)
        if not known:
            print("warning: the image carries no voxel size; assuming 1,1,1 nm (give "
                  "--voxel-size and --voxel-unit)", file=sys.stderr)
        space = scale_space(args, source, voxel_nm if known else None)
        ndim = 2 if source.shape[2] == 1 else 3
        xyz, scale, response, value = find_blobs(source, args.channel, space, args.threshold,
                                                 args.overlap, jobs)
        table = spot_table(xyz, scale, response, value, space, convert(voxel_nm, "nm", "um"),
                           ndim)
        counts = None
        if labels is not None:
            table["label"], counts = label_spots(labels, xyz, jobs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with staged({"spots": (args.output, ".tsv"), "counts": (args.counts, ".tsv")}) as temps:
        write_frame(temps["spots"], table)
        if args.counts:
            write_frame(temps["counts"], pd.DataFrame(
                {"label": list(counts), "spots": list(counts.values())}, dtype=np.int64))
    summary = f"found {len(table)} spots"
    if counts is not None:
        inside = int((table["label"] > 0).sum())
        summary += f"; {inside} inside {len(counts)} objects, {len(table) - inside} outside"
    print(summary)
