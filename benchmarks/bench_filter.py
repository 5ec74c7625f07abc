"""Benchmark `neurostation filter --method gaussian` chunk-wise against scipy in memory.

Anchor: read the whole uint16 stack with tifffile, `scipy.ndimage.gaussian_filter` in float64,
write a float32 TIFF (what a script does). Ours: the same filter box by box with halos, to a
TIFF (slabs of whole planes) and to a precomputed volume with its pyramid, --jobs 1 and 2.
Each is a separate process, timed with its peak RSS (whole process tree); two volume sizes
show whether memory stays flat as the volume grows. Prints seconds, MiB and ratios.

Run: .venv/bin/python benchmarks/bench_filter.py   (about two minutes on 2 cores)
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import tifffile

from measure import run_measured

ANCHOR = """
import sys, numpy as np, tifffile
from scipy import ndimage
a = tifffile.imread(sys.argv[1])
out = ndimage.gaussian_filter(a.astype(np.float64), float(sys.argv[3])).astype(np.float32)
tifffile.imwrite(sys.argv[2], out, metadata={"axes": "ZYX"})
"""


def write_stack(path, shape, seed=0):
    """A uint16 ZYX stack written plane by plane (memory: one plane)."""
    rng = np.random.default_rng(seed)
    planes = (rng.integers(0, 4096, shape[1:], dtype=np.uint16) for _ in range(shape[0]))
    tifffile.imwrite(path, planes, shape=shape, dtype=np.uint16, photometric="minisblack",
                     metadata={"axes": "ZYX"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,512", help="z depths of 256 x 256 stacks")
    parser.add_argument("--sigma", default="2")
    args = parser.parse_args()
    ns = [sys.executable, "-m", "neurostation.cli", "filter"]
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-filter-")
    try:
        for depth in (int(d) for d in args.sizes.split(",")):
            stack = os.path.join(tmp, "stack.tif")
            write_stack(stack, (depth, 256, 256))
            mib = depth * 256 * 256 * 2 / 2**20
            runs = {"scipy in memory": [sys.executable, "-c", ANCHOR, stack,
                                        os.path.join(tmp, "anchor.tif"), args.sigma]}
            for jobs in ("1", "2"):
                runs[f"ours tiff --jobs {jobs}"] = ns + [
                    stack, "-o", os.path.join(tmp, f"ours{jobs}.tif"), "--method", "gaussian",
                    "--sigma", args.sigma, "--jobs", jobs]
                runs[f"ours precomputed --jobs {jobs}"] = ns + [
                    stack, "-o", os.path.join(tmp, f"vol{jobs}"), "--method", "gaussian",
                    "--sigma", args.sigma, "--jobs", jobs]
            anchor = None
            for name, cmd in runs.items():
                seconds, peak = run_measured(cmd)
                anchor = anchor or (seconds, peak)
                rows.append((f"{depth}x256x256 ({mib:.0f} MiB)", name, seconds, peak,
                             seconds / anchor[0], peak / anchor[1]))
            ours = tifffile.imread(os.path.join(tmp, "ours1.tif"))
            ref = tifffile.imread(os.path.join(tmp, "anchor.tif"))
            err = float(np.abs(ours - ref).max() / np.abs(ref).max())
            print(f"{depth}x256x256: max relative difference ours vs scipy {err:.1e}", file=sys.stderr)
            for name in ("vol1", "vol2", "ours1.tif", "ours2.tif", "anchor.tif"):
                path = os.path.join(tmp, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'volume (z x y x x, uint16)':28} {'run':30} {'s':>7} {'peak MiB':>9} {'time/scipy':>10} {'mem/scipy':>9}")
    for volume, name, seconds, peak, t_ratio, m_ratio in rows:
        print(f"{volume:28} {name:30} {seconds:7.2f} {peak:9.0f} {t_ratio:10.2f} {m_ratio:9.2f}")


if __name__ == "__main__":
    main()
