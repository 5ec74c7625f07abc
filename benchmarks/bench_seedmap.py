"""Benchmark `neurostation seed-map` against the in-memory anchor, in one run, plus the
accuracy and time of `neurostation register` on the MNI template.

Seed map: synthetic 64^3 series of 200, 400 and 800 volumes (float32, uncompressed NIfTI,
written volume by volume) with a seed sphere whose signal is planted, at r = 0.6, in a second
region. Anchor: nibabel `get_fdata()` of the whole series, then the voxel-wise Pearson r with
the seed mean in numpy (demeaned in place, one matrix-vector product) — the lean version of
nilearn's seed-correlation recipe. Each side runs in its own subprocess; peak RSS is
that process's (sampled with any children). Goal: our peak RSS flat as the series
doubles; the maps agree (max |difference| printed).

Registration: the MNI152 template at 3 mm moved by a known affine (as in
tests/test_register.py); the RMS distance over the brain in voxels and the wall time.

Run: .venv/bin/python benchmarks/bench_seedmap.py   (a few minutes on 2 cores; ~2.5 GB disk
in a temporary folder, the anchor needs ~2 GB of memory at 800 volumes)
"""

import os
import sys
import tempfile

import nibabel as nib
import numpy as np
from measure import run_measured, write_nifti_series

SHAPE = (64, 64, 64)
LENGTHS = (200, 400, 800)
CENTRE_VOX = (20, 24, 30)  # the seed sphere; the planted region is a box elsewhere
BIN = os.path.join(os.path.dirname(sys.executable), "neurostation")

ANCHOR = """
import sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
data = img.get_fdata()                                  # whole series in memory, float64
ijk = np.indices(data.shape[:3]).reshape(3, -1)
world = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
centre = np.array([float(v) for v in sys.argv[3].split(",")])
inside = (np.sqrt(((world - centre[:, None]) ** 2).sum(0)) <= float(sys.argv[4])).reshape(data.shape[:3])
seed = data[inside].mean(axis=0)
seed -= seed.mean(); seed /= np.sqrt(seed @ seed)
data -= data.mean(axis=3, keepdims=True)
norm = np.sqrt(np.einsum("xyzt,xyzt->xyz", data, data))
r = np.einsum("xyzt,t->xyz", data, seed) / np.where(norm > 0, norm, 1)
nib.save(nib.Nifti1Image(r.astype(np.float32), img.affine), sys.argv[2])
"""


def write_series(path, t, rng):
    """The synthetic series: noise, the seed signal in a small cube and, at r about 0.6 with
    the seed, in a second box."""
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = -96
    signal = rng.standard_normal(t)
    x, y, z = CENTRE_VOX

    def volume(k):
        vol = 100 + rng.standard_normal(SHAPE, dtype=np.float32)
        vol[x - 2:x + 3, y - 2:y + 3, z - 2:z + 3] += 3 * signal[k]
        vol[40:48, 40:48, 20:28] += 0.75 * signal[k]
        return vol

    write_nifti_series(path, affine, t, volume)
    return affine


def bench_seedmap(folder):
    rng = np.random.default_rng(0)
    print(f"seed-map, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} voxels, float32 .nii, seed sphere 6 mm, "
          "ours with --max-memory 64 (MB)")
    header = (f"{'volumes':>7} {'GB':>5} | {'anchor s':>8} {'ours s':>7} {'time ratio':>10} | "
              f"{'anchor MB':>9} {'ours MB':>8} {'RSS ratio':>9} | {'max |dr|':>9} {'r planted':>9}")
    print(header)
    print("-" * len(header))
    for t in LENGTHS:
        series = os.path.join(folder, f"bold_{t}.nii")
        affine = write_series(series, t, rng)
        centre = ",".join(f"{v:g}" for v in (affine @ (CENTRE_VOX + (1,)))[:3])
        ours_map, anchor_map = (os.path.join(folder, f"{n}_{t}.nii.gz") for n in ("ours", "anchor"))
        a_wall, a_rss = run_measured([sys.executable, "-c", ANCHOR, series, anchor_map, centre, "6"])
        o_wall, o_rss = run_measured([BIN, "seed-map", series, f"--sphere={centre}", "--radius", "6",
                                  "--max-memory", "64", "-o", ours_map])
        ours, anchor = nib.load(ours_map).get_fdata(), nib.load(anchor_map).get_fdata()
        gb = os.path.getsize(series) / 1e9
        print(f"{t:>7} {gb:>5.2f} | {a_wall:>8.1f} {o_wall:>7.1f} {a_wall / o_wall:>9.2f}x | "
              f"{a_rss:>9.0f} {o_rss:>8.0f} {a_rss / o_rss:>8.1f}x | "
              f"{np.abs(ours - anchor).max():>9.1e} {np.median(ours[40:48, 40:48, 20:28]):>9.3f}")
        os.remove(series)
    print("time ratio = anchor / ours (above 1: ours faster); RSS ratio = anchor / ours")


def bench_register(folder):
    """RMS (voxels) and time of the affine registration of the moved MNI template at 3 mm."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from dipy.align.reslice import reslice
    from test_register import MM, grid_map, known_affine

    from neurostation.processing.register import default_template

    img = nib.load(default_template())
    data, affine = reslice(img.get_fdata(), img.affine, img.header.get_zooms()[:3], (MM,) * 3)
    truth = known_affine()
    moving = grid_map(np.linalg.inv(truth), data.shape, affine).transform(data)
    paths = {n: os.path.join(folder, f"{n}.nii.gz") for n in ("template", "moving", "out")}
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), paths["template"])
    nib.save(nib.Nifti1Image(moving.astype(np.float32), affine), paths["moving"])
    truth_path, report = os.path.join(folder, "truth.txt"), os.path.join(folder, "report.tsv")
    np.savetxt(truth_path, truth)
    wall, rss = run_measured([BIN, "register", paths["moving"], "--template", paths["template"],
                          "-o", paths["out"], "--transform", os.path.join(folder, "a.txt"),
                          "--reference-transform", truth_path, "--report", report])
    rows = dict(line.split("\t") for line in open(report).read().splitlines()[1:])
    print(f"\nregister, MNI152 at {MM:g} mm ({rows['template_shape']}), known affine (rotation "
          "6/-4/8 deg, scale up to 5 %, shear, shift 6/-5/4 mm), affine stages 200,100,20:")
    print(f"  RMS over the brain {rows['rms_voxels']} voxels ({rows['rms_mm']} mm); NCC "
          f"{rows['ncc_before']} -> {rows['ncc_after']}; {wall:.1f} s wall, peak RSS {rss:.0f} MB")


def main():
    with tempfile.TemporaryDirectory(prefix="bench_seedmap_") as folder:
        bench_seedmap(folder)
        bench_register(folder)


if __name__ == "__main__":
    main()
