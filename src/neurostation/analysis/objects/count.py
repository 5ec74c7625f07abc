"""`neurostation count`: the number of objects (distinct labels > 0) of each label volume of a
collection, with the labelled voxels and volume, as one table with a sample column and a
picture of the counts and object sizes per sample; box by box (memory: a box plus one voxel
count per label)."""

import math
import shutil
import tempfile

import numpy as np
import pandas as pd

from ...chunks.pool import resolve_jobs
from ...io.outputs import staged
from ...units import convert, min_voxels, parse_min_size
from ..fmri.tables import write_frame
from .count_plot import plot_counts
from .inputs import add_common_options, add_samples, open_labels, read_labels, voxel_size
from .measure import pair_inputs
from .tally import box_tally, tally_volume


def add_parser(subparsers):
    p = subparsers.add_parser(
        "count", help="count the objects of label volumes (one row per sample) and plot them",
        description="Count the objects (distinct labels > 0) of one or more label volumes "
        "(TIFF ZYX, OME-TIFF, NIfTI-1, precomputed folder, URL or JSON reference) and their "
        "labelled voxels and volume; optionally only objects of at least --min-size. Several "
        "inputs give one row each, in natural order of their names (cell_2 before cell_10). "
        "With --plot, a PNG: a bar chart of the counts and the object volumes per sample. Read "
        "box by box: memory is one box plus one voxel count per label.",
        epilog="example: neurostation count cell_1.ome.tif cell_2.ome.tif -o counts.tsv "
        "--plot counts.png --min-size 5um3",
    )
    add_samples(p, "count")
    p.add_argument("--plot", help="also draw the counts and object volumes per sample (PNG)")
    p.add_argument("--min-size", metavar="SIZE",
                   help="count only objects of at least this size: voxels (e.g. 50) or a "
                   "volume with a cubed unit (e.g. 10um3)")
    add_common_options(p)
    p.set_defaults(func=run, intensity=None)
    return p


class _BoxLabels:
    """The labels (> 0) of one box with their voxel counts (picklable)."""

    def __init__(self, source):
        self.source = source

    def __call__(self, box):
        labels = read_labels(self.source, box)
        return box_tally(labels[labels != 0])


def count_row(name, source, sizes, smallest, spacing, unit):
    """One row of the count table from the voxel counts per label (`sizes`)."""
    voxel = float(np.prod(spacing))
    kept = sizes[sizes >= smallest]
    row = {"sample": name, "objects": len(kept), "labelled_voxels": int(kept.sum()),
           f"labelled_volume_{unit}3": float(kept.sum()) * voxel,
           "labelled_fraction": kept.sum() / math.prod(source.shape),
           f"median_object_volume_{unit}3": float(np.median(kept)) * voxel if len(kept) else np.nan}
    if smallest:
        row["smaller_objects_left_out"] = len(sizes) - len(kept)
    return row, kept * voxel


def run(args):
    jobs = resolve_jobs(args.jobs)
    samples = pair_inputs(args)
    size = parse_min_size(args.min_size) if args.min_size else None
    workdir = tempfile.mkdtemp(prefix="neurostation-count-")
    rows, volumes = [], []
    try:
        for name, path, _ in samples:
            labels = open_labels(path, workdir, name)
            spacing = voxel_size(labels, args.voxel_size, args.unit)
            smallest = min_voxels(size, convert(spacing, args.unit, "nm"), True)
            tally = tally_volume(_BoxLabels(labels), labels, jobs, f"counting {name}")
            row, kept = count_row(name, labels, tally.counts, smallest, spacing, args.unit)
            rows.append(row)
            volumes.append(kept)
            print(f"{name}: {row['objects']} objects" + (
                f" of at least {smallest} voxels ({row['smaller_objects_left_out']} smaller left "
                "out)" if smallest else ""))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = pd.DataFrame(rows)
    with staged({"table": (args.output, ".tsv"), "plot": (args.plot, ".png")}) as temps:
        write_frame(temps["table"], table)
        if args.plot:
            plot_counts(temps["plot"], table, volumes, args.unit, args.min_size)
    print(f"wrote the counts of {len(rows)} sample(s) to {args.output}"
          + (f" and {args.plot}" if args.plot else ""))
