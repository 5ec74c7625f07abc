"""Ingest benchmark: ours (whole pyramid, box by box, --jobs) vs the naive anchor (load the
whole stack, one cloud-volume write of scale 0, no pyramid) vs raw disk write speed.

Run: .venv/bin/python benchmarks/bench_ingest.py [--full]
Prints throughput (MB/s of input), peak RSS of the whole process tree, and ratios. The quick
set grows the stack in z and in x/y; --full uses the issue's sizes (up to 4 GiB).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tifffile
from measure import run_measured

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
ANCHOR = """
import sys, glob, numpy as np, tifffile
from cloudvolume import CloudVolume
files = sorted(glob.glob(sys.argv[1] + '/*.tif'))
stack = np.stack([tifffile.imread(f) for f in files])          # z, y, x: all in memory
data = np.ascontiguousarray(stack.transpose(2, 1, 0))[..., None]
info = CloudVolume.create_new_info(1, 'image', 'uint8', 'raw', [4, 4, 40], [0, 0, 0],
                                   data.shape[:3], chunk_size=[128, 128, 64])
vol = CloudVolume('file://' + sys.argv[2], info=info)           # defaults: gzip chunks
vol.commit_info()
vol[:, :, :] = data
"""


def make_stack(folder, z, yx):
    """z uncompressed 8-bit TIFF slices of yx x yx, smooth structure plus noise."""
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:yx, 0:yx]
    base = (np.sin(x / 37.0) * np.cos(y / 23.0) * 60 + 120).astype(np.int16)
    for i in range(z):
        plane = np.clip(base + rng.integers(-20, 20, size=base.shape) + i % 7, 0, 255)
        tifffile.imwrite(os.path.join(folder, f"slice_{i:05d}.tif"), plane.astype(np.uint8),
                         metadata={"axes": "YX"})


def disk_write(folder, nbytes):
    """Raw sequential write of nbytes with fsync: the physical limit."""
    block = np.random.default_rng(1).integers(0, 255, size=64 << 20, dtype=np.uint8).tobytes()
    path = os.path.join(folder, "raw.bin")
    start = time.perf_counter()
    with open(path, "wb") as handle:
        written = 0
        while written < nbytes:
            handle.write(block)
            written += len(block)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - start
    os.remove(path)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (0.5 to 4 GiB)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()
    sizes = ([(512, 1024), (4096, 1024), (512, 2896)] if args.full
             else [(64, 1024), (256, 1024), (64, 2048)])
    ours_cli = os.path.join(os.path.dirname(PY), "neurostation")
    rows = []
    work = tempfile.mkdtemp(prefix="bench-ingest-", dir=os.environ.get("BENCH_DIR"))
    try:
        for z, yx in sizes:
            folder = os.path.join(work, f"in_{z}_{yx}")
            make_stack(folder, z, yx)
            mb = z * yx * yx / 1e6
            t_disk = disk_write(work, z * yx * yx)
            t_anchor, m_anchor = run_measured([PY, "-c", ANCHOR, folder, os.path.join(work, "anchor")])
            t_ours, m_ours = run_measured([ours_cli, "ingest", folder, "-o", os.path.join(work, "ours"),
                                           "--voxel-size", "4,4,40", "--jobs", str(args.jobs)])
            rows.append((f"{yx}x{yx}x{z}", mb, mb / t_disk, mb / t_anchor, m_anchor, mb / t_ours, m_ours))
            for name in ("anchor", "ours", os.path.basename(folder)):
                shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ningest benchmark (jobs={args.jobs}; ours builds the whole pyramid, the anchor writes scale 0 only)")
    head = ("stack x,y,z", "MB", "disk MB/s", "anchor MB/s", "anchor RSS MiB", "ours MB/s",
            "ours RSS MiB", "ours/anchor", "ours/disk")
    print("  ".join(f"{h:>14}" for h in head))
    for name, mb, disk, anchor, m_a, ours, m_o in rows:
        cells = (name, f"{mb:.0f}", f"{disk:.0f}", f"{anchor:.1f}", f"{m_a:.0f}", f"{ours:.1f}",
                 f"{m_o:.0f}", f"{ours / anchor:.2f}x", f"{ours / disk:.2f}")
        print("  ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
