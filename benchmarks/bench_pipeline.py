"""filter → threshold → label → measure, each a `neurostation` subprocess, on a uint16 OME-TIFF and
on one 4 times larger, the intermediate volumes written as precomputed (the format for big
data; TIFF outputs hold a z-slab of the whole plane): peak RSS per step stays flat (bounded by boxes, not by the volume), and
the speed-up of `--jobs 2` over `--jobs 1` on the smaller one. Every run is measured by
run_measured (wall time, peak RSS of the process tree).

    .venv/bin/python benchmarks/bench_pipeline.py [--workdir DIR] [--size X,Y,Z] [--skip-large]
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import tifffile
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import measure_run  # noqa: E402

PYTHON = sys.executable


def write_volume(path, shape_xyz, tiles=1, seed=0):
    """A uint16 ZYX OME-TIFF of bright blobs (smoothed noise above one sd) on noise, the
    (x, y, z) block repeated `tiles` times along x and y, written plane by plane."""
    x, y, z = shape_xyz
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal((z, y, x), dtype=np.float32), 3.0)
    peaks = np.clip(smooth / smooth.std() - 1, 0, None)  # ~16 % of the voxels, separate blobs
    noise = rng.normal(0, 150, smooth.shape)
    block = np.clip(1000 + 8000 * peaks + noise, 0, 65535).astype(np.uint16)
    tifffile.imwrite(path, (np.tile(plane, (tiles, tiles)) for plane in block),
                     shape=(z, y * tiles, x * tiles), dtype=np.uint16, bigtiff=True, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                               "PhysicalSizeZ": 1.0})
    return x * y * z * tiles * tiles * 2 / 2**20


def pipeline(src, folder, jobs):
    """(step, seconds, peak MiB, CPU seconds) of the four steps on `src`, outputs under `folder`."""
    os.makedirs(folder, exist_ok=True)
    out = {name: os.path.join(folder, name) for name in
           ("smooth", "mask", "labels", "objects.tsv")}
    volume = ["--format", "precomputed"]
    steps = [("filter", ["filter", src, "-o", out["smooth"], "--method", "gaussian",
                         "--sigma", "1", *volume]),
             ("threshold", ["threshold", out["smooth"], "-o", out["mask"], "--method", "otsu",
                            *volume]),
             ("label", ["label", out["mask"], "-o", out["labels"], *volume]),
             ("measure", ["measure", out["labels"], "--intensity", out["smooth"],
                          "-o", out["objects.tsv"]])]
    rows = []
    for name, argv in steps:
        rows.append((name, *measure_run([PYTHON, "-m", "neurostation.cli", *argv, "--jobs", str(jobs)])))
    with open(out["objects.tsv"]) as table:
        objects = sum(1 for _ in table) - 1
    return rows, objects


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="folder for the volumes (default: a temporary one)")
    parser.add_argument("--size", default="512,512,256", help="X,Y,Z of the smaller volume")
    parser.add_argument("--skip-large", action="store_true", help="skip the 4x volume")
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="bench-pipeline-")
    shape = tuple(int(v) for v in args.size.split(","))
    runs = [("1x", 1, 1), ("1x", 1, 2)] + ([] if args.skip_large else [("4x", 2, 1)])
    results, sizes = {}, {}
    for label, tiles, jobs in runs:
        src = os.path.join(work, f"volume{label}.ome.tif")
        if label not in sizes:
            sizes[label] = write_volume(src, shape, tiles)
        results[label, jobs] = pipeline(src, os.path.join(work, f"{label}-jobs{jobs}"), jobs)
    print(f"volumes: 1x = {shape[0]}x{shape[1]}x{shape[2]} uint16 ({sizes['1x']:.0f} MiB)"
          + ("" if args.skip_large else f", 4x = {sizes['4x']:.0f} MiB (tiled 2x2 in x, y)"))
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'step':10} {'volume':>6} {'jobs':>4} {'seconds':>8} {'CPU s':>7} {'peak RSS MiB':>13} "
          f"{'volume/peak':>11} {'speed-up':>8}")
    for (label, jobs), (rows, objects) in results.items():
        for (name, seconds, peak, cpu), base in zip(rows, results[label, 1][0]):
            print(f"{name:10} {label:>6} {jobs:4d} {seconds:8.1f} {cpu:7.1f} {peak:13.0f} "
                  f"{sizes[label] / peak:11.2f} {base[1] / seconds:8.2f}")
        total = sum(r[1] for r in rows)
        print(f"{'total':10} {label:>6} {jobs:4d} {total:8.1f} {sum(r[3] for r in rows):7.1f} "
              f"{max(r[2] for r in rows):13.0f} {'':11} "
              f"{sum(r[1] for r in results[label, 1][0]) / total:8.2f}   objects: {objects}")
    same = results["1x", 1][1] == results["1x", 2][1]
    print(f"--jobs 2 finds the same number of objects as --jobs 1: {same}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
