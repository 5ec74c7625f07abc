"""Local thresholds and watershed splitting against scikit-image in memory, in one run:
`threshold --method sauvola` on a uint16 volume and on one 4 times larger (peak RSS should stay
flat) against threshold_sauvola on the whole array (same mask, time and memory ratios); `label`
and `label --split` on a mask of touching ball clusters (the cost of splitting). Every run is a
subprocess measured by run_measured.

    .venv/bin/python benchmarks/bench_local_split.py [--workdir DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests")]
from measure import run_measured  # noqa: E402
from test_label_split import VOXEL_UM, clusters  # noqa: E402

PYTHON = sys.executable
NEUROSTATION = os.path.join(os.path.dirname(PYTHON), "neurostation")
SHAPE_ZYX = (128, 256, 256)


def write_volume(path, tiles):
    """A uint16 ZYX TIFF of gamma noise, `tiles` x `tiles` copies of SHAPE_ZYX side by side."""
    rng = np.random.default_rng(0)
    zyx = (rng.gamma(2, 500, SHAPE_ZYX) + 1000).astype(np.uint16)
    tifffile.imwrite(path, (np.tile(p, (tiles, tiles)) for p in zyx), dtype=np.uint16,
                     shape=(SHAPE_ZYX[0], SHAPE_ZYX[1] * tiles, SHAPE_ZYX[2] * tiles),
                     metadata={"axes": "ZYX"})


def in_memory(src, out):
    """Subprocess body: scikit-image's Sauvola mask of the whole TIFF."""
    from skimage.filters import threshold_sauvola

    zyx = tifffile.imread(src)
    tifffile.imwrite(out, (zyx > threshold_sauvola(zyx, 15)).astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="folder for the volumes (default: a temporary one)")
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="bench-local-split-")
    try:
        rows = []
        for tiles in (1, 2):
            src, ours, ref = (os.path.join(work, f"{n}{tiles}.tif") for n in ("vol", "ours", "ref"))
            write_volume(src, tiles)
            t_ref, m_ref = run_measured([PYTHON, __file__, "--in-memory", src, ref])
            t_ours, m_ours = run_measured([NEUROSTATION, "threshold", src, "-o", ours,
                                           "--method", "sauvola", "--jobs", "1"])
            same = np.array_equal(tifffile.imread(ours), tifffile.imread(ref))
            shape = "x".join(map(str, (SHAPE_ZYX[2] * tiles, SHAPE_ZYX[1] * tiles, SHAPE_ZYX[0])))
            rows.append((f"sauvola {shape} w15", t_ref, m_ref, t_ours, m_ours, same))
        mask = os.path.join(work, "balls.tif")
        tifffile.imwrite(mask, clusters(5, shape=(48, 192, 192)).astype(np.uint8), ome=True,
                         metadata={"axes": "ZYX", "PhysicalSizeX": VOXEL_UM[0],
                                   "PhysicalSizeY": VOXEL_UM[1], "PhysicalSizeZ": VOXEL_UM[2]})
        t_label, m_label = run_measured([NEUROSTATION, "label", mask, "-o",
                                         os.path.join(work, "l.tif"), "--jobs", "1"])
        t_split, m_split = run_measured([NEUROSTATION, "label", mask, "-o",
                                         os.path.join(work, "s.tif"), "--split", "--jobs", "1"])
        print(f"{'case':28} {'skimage s':>9} {'MiB':>6} {'ours s':>7} {'MiB':>6} {'time x':>6} same")
        for name, t_ref, m_ref, t_ours, m_ours, same in rows:
            print(f"{name:28} {t_ref:9.1f} {m_ref:6.0f} {t_ours:7.1f} {m_ours:6.0f} "
                  f"{t_ours / t_ref:6.2f} {same}")
        objects = [int(tifffile.imread(os.path.join(work, n)).max()) for n in ("l.tif", "s.tif")]
        print(f"label 192x192x48 balls: {t_label:.1f} s {m_label:.0f} MiB, {objects[0]} objects; "
              f"--split {t_split:.1f} s {m_split:.0f} MiB, {objects[1]} objects "
              f"({t_split / t_label:.2f} x)")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--in-memory":
        in_memory(sys.argv[2], sys.argv[3])
    else:
        main()
