"""`neurostation measure`: per-object measurements of label volumes, chunk-wise.

Each box contributes per-label sums (count, position moments, bounding box, intensity, the
area of its piece of the marching-cubes surface);
the sums are merged into one row per label, so memory is a box plus the rows, and the
numbers equal scikit-image's regionprops on the whole volume (floats to rounding).
Several label volumes (a collection) give one table with a `sample` column and a summary
row per sample.
"""

import os
import shutil
import tempfile

import numpy as np
import pandas as pd

from ...chunks.pool import resolve_jobs, run_tasks
from ...errors import UserError
from ...io.outputs import staged
from ...io.sources import natural_key
from ..fmri.tables import write_frame
from .grouping import Batches, sum_by_key
from .inputs import (add_common_options, add_samples, label_boxes, open_intensity, open_labels,
                     voxel_size)
from .meshing import crop_box, read_cells, surface_areas
from .moments import PAIRS, box_moments, merge_moments


def add_parser(subparsers):
    p = subparsers.add_parser(
        "measure", help="measure the objects of label volumes (volume, centroid, box, axes, "
        "surface area, intensity)",
        description="Measure every object (label > 0) of one or more label volumes (TIFF ZYX, "
        "OME-TIFF, NIfTI-1, precomputed folder, URL or JSON reference): voxel count, volume, "
        "centroid in voxels and physical units, bounding box, equivalent diameter, principal "
        "axis lengths (from the second moments, as scikit-image's axis_major_length), surface "
        "area (of the marching-cubes mesh, as scikit-image's marching_cubes + "
        "mesh_surface_area) and sphericity, and with "
        "--intensity the mean, min, max, std and integrated intensity. Read box by box: memory "
        "is one box plus one row per object. Physical positions are voxel index x voxel size "
        "(voxel 0's centre at 0, as scikit-image and NIfTI count). Several inputs give one "
        "table with a sample column, in natural order of their names.",
        epilog="example: neurostation measure cells.ome.tif --intensity nuclei.ome.tif "
        "-o objects.tsv --summary summary.tsv",
    )
    add_samples(p, "object")
    p.add_argument("--summary", help="also write a per-sample summary table (TSV): objects, "
                   "total/mean/median/min/max volume, mean equivalent diameter")
    p.add_argument("--intensity", nargs="+", metavar="IMAGE",
                   help="intensity image(s) on the same grid, one per label volume")
    p.add_argument("--intensity-names", nargs="+", metavar="NAME",
                   help="names of the intensity images; with several inputs each label volume "
                   "takes the intensity image of the same name (default: in the given order)")
    add_common_options(p)
    p.set_defaults(func=run)
    return p


class _BoxTask:
    """Moments and surface-area pieces of one box of a label volume (and its intensity
    image), voxels of `spacing` (x, y, z); picklable."""

    def __init__(self, labels, intensity, spacing):
        self.labels, self.intensity, self.spacing = labels, intensity, spacing

    def __call__(self, box):
        values = None if self.intensity is None else self.intensity.read(box)[..., 0]
        cells, origin = read_cells(self.labels, box)
        moments = box_moments(crop_box(cells, origin, box), box.start, values)
        return moments, surface_areas(cells, self.spacing)


def _merge_areas(parts):
    """(labels, summed areas) of several (labels, areas) pieces."""
    label, _, sums = sum_by_key(np.concatenate([p[0] for p in parts]),
                                np.concatenate([p[1] for p in parts])[:, None])
    return label, sums[:, 0]


def measure_volume(labels, intensity, jobs, spacing):
    """The merged Moments of a label volume (and intensity image), read box by box, and each
    object's surface area (aligned with the Moments' labels)."""
    moments, areas = Batches(merge_moments, len), Batches(_merge_areas, lambda p: len(p[0]))
    for part, area in run_tasks(_BoxTask(labels, intensity, np.asarray(spacing, np.float64)),
                                label_boxes(labels), jobs, desc=f"measuring {labels.name}"):
        moments.add(part)
        areas.add(area)
    m, (area_labels, area) = moments.result(), areas.result()
    return m, area[np.searchsorted(area_labels, m.label)]


def object_table(m, area, spacing, unit):
    """The per-object columns of merged Moments `m` and surface areas `area`, physical
    columns in `unit`."""
    size = np.asarray(spacing, np.float64)
    table = {"label": m.label, "voxel_count": m.count,
             f"volume_{unit}3": m.count * float(np.prod(size))}
    for i, axis in enumerate("xyz"):
        table[f"centroid_{axis}"] = m.mean[:, i]
    for i, axis in enumerate("xyz"):
        table[f"centroid_{axis}_{unit}"] = m.mean[:, i] * size[i]
    for i, axis in enumerate("xyz"):
        table[f"bbox_{axis}0"] = m.lo[:, i]
    for i, axis in enumerate("xyz"):
        table[f"bbox_{axis}1"] = m.hi[:, i] + 1
    table[f"equivalent_diameter_{unit}"] = np.cbrt(6 * table[f"volume_{unit}3"] / np.pi)
    lengths = axis_lengths(m, size)
    for i, name in enumerate(("major", "middle", "minor")):
        table[f"axis_{name}_{unit}"] = lengths[:, i]
    table[f"surface_area_{unit}2"] = area
    # (pi^(1/3) (6 V)^(2/3)) / A: 1 for a sphere, less for any other shape
    table["sphericity"] = np.cbrt(np.pi) * np.cbrt(6 * table[f"volume_{unit}3"]) ** 2 / area
    if m.values is not None:
        v = m.values
        table.update({"intensity_mean": v["mean"], "intensity_min": v["min"],
                      "intensity_max": v["max"],
                      "intensity_std": np.sqrt(np.maximum(v["m2"], 0) / m.count),
                      "intensity_integrated": v["mean"] * m.count})
    return pd.DataFrame(table)


def axis_lengths(m, size):
    """Principal axis lengths (n, 3: major, middle, minor) in physical units: 4 standard
    deviations along each eigenvector of the covariance (sqrt(20 eigenvalue) of a solid
    ellipsoid's full axis), as scikit-image's axis_major_length / axis_minor_length."""
    cov = np.zeros((len(m), 3, 3))
    for c, (i, j) in enumerate(PAIRS):
        cov[:, i, j] = cov[:, j, i] = m.m2[:, c] / m.count * size[i] * size[j]
    eig = np.linalg.eigvalsh(cov)[:, ::-1] if len(m) else np.zeros((0, 3))
    # below float rounding of the largest: a flat or thin object's zero axes, not noise
    eig[eig < 1e-12 * eig[:, :1]] = 0
    return np.sqrt(20 * eig)


def summary_row(name, table, unit):
    """One summary row of a sample's object table."""
    vol = table[f"volume_{unit}3"]
    row = {"sample": name, "objects": len(table), f"total_volume_{unit}3": vol.sum()}
    for stat in ("mean", "median", "min", "max"):
        row[f"{stat}_volume_{unit}3"] = getattr(vol, stat)() if len(vol) else np.nan
    row[f"mean_equivalent_diameter_{unit}"] = table[f"equivalent_diameter_{unit}"].mean()
    if "intensity_mean" in table:
        row["mean_intensity"] = table["intensity_mean"].mean()
    return row


def pair_inputs(args):
    """[(name, label path, intensity path or None)] in natural order of the names."""
    names = args.names or [os.path.basename(p.rstrip("/")) for p in args.inputs]
    if len(names) != len(args.inputs):
        raise UserError(f"--names gives {len(names)} names for {len(args.inputs)} inputs")
    if len(set(names)) != len(names):
        raise UserError("--names repeats a name; every sample needs its own")
    intensity = [None] * len(names)
    if args.intensity:
        if len(args.intensity) != len(args.inputs):
            raise UserError(f"--intensity gives {len(args.intensity)} images for "
                            f"{len(args.inputs)} label volumes; give one per label volume")
        inames = args.intensity_names or [os.path.basename(p.rstrip("/")) for p in args.intensity]
        if len(inames) != len(args.intensity):
            raise UserError(f"--intensity-names gives {len(inames)} names for "
                            f"{len(args.intensity)} intensity images")
        intensity = list(zip(args.intensity, inames))
        if args.intensity_names and len(names) > 1:
            by_name = {n: (p, n) for p, n in intensity}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise UserError(f"no intensity image is named {missing[0]!r}; with several "
                                "inputs each label volume takes the intensity image of its name")
            intensity = [by_name[n] for n in names]
    rows = list(zip(names, args.inputs, intensity))
    return sorted(rows, key=lambda r: natural_key(r[0]))


def run(args):
    jobs = resolve_jobs(args.jobs)
    samples = pair_inputs(args)
    workdir = tempfile.mkdtemp(prefix="neurostation-measure-")
    tables, summaries = [], []
    try:
        for name, path, image in samples:
            labels = open_labels(path, workdir, name)
            intensity = None if image is None else open_intensity(image[0], workdir, labels,
                                                                  image[1])
            spacing = voxel_size(labels, args.voxel_size, args.unit)
            table = object_table(*measure_volume(labels, intensity, jobs, spacing), spacing,
                                 args.unit)
            table.insert(0, "sample", name)
            tables.append(table)
            summaries.append(summary_row(name, table, args.unit))
            print(f"{name}: {len(table)} objects" + ("" if len(table) else
                                                    " (no voxel is labelled: the table has no row)"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = {"table": (args.output, ".tsv"), "summary": (args.summary, ".tsv")}
    with staged(targets) as temps:
        write_frame(temps["table"], pd.concat(tables, ignore_index=True))
        if args.summary:
            write_frame(temps["summary"], pd.DataFrame(summaries))
    print(f"wrote the object table of {len(samples)} sample(s) to {args.output}")
