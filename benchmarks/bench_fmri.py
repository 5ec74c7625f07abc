"""Benchmark region time series + correlation matrix against nilearn, in one run.

Data (synthetic, written once to a temporary folder): a 91 x 109 x 91 x 300 float32 series
on the 2 mm MNI grid (1.08 GB uncompressed; optionally gzipped too) and an atlas of 120
regions (nearest of 120 random seeds inside an ellipsoidal brain), each region carrying its
own signal plus voxel noise.

Anchor: nilearn `NiftiLabelsMasker(atlas).fit_transform(series)` then
`ConnectivityMeasure(kind="correlation", cov_estimator=EmpiricalCovariance())`.
Ours: `neurostation fmri-timeseries` then `neurostation connectivity`, as a user runs them.
Each side runs in its own subprocess(es): wall time includes starting Python and imports for
both; peak RSS is the largest of that side's commands (each sampled with its children). The two
matrices are compared at the end.

Run: .venv/bin/python benchmarks/bench_fmri.py [--volumes 300] [--regions 120] [--gzip]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from measure import run_measured, write_nifti_series

SHAPE = (91, 109, 91)
AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])

NILEARN = """
import sys
import numpy as np
from nilearn.connectome import ConnectivityMeasure
from nilearn.maskers import NiftiLabelsMasker
from sklearn.covariance import EmpiricalCovariance
series, atlas, out = sys.argv[1:4]
ts = NiftiLabelsMasker(atlas).fit_transform(series)
measure = ConnectivityMeasure(kind="correlation", cov_estimator=EmpiricalCovariance())
m = measure.fit_transform([ts])[0]
np.save(out, m)
"""


def make_data(folder, n_t, n_regions, gzip):
    """Write the atlas and the series (volume by volume, so memory stays small)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    grid = np.indices(SHAPE).reshape(3, -1).T.astype(float)
    centre, radii = (np.array(SHAPE) - 1) / 2, np.array(SHAPE) * 0.42
    brain = (((grid - centre) / radii) ** 2).sum(axis=1) <= 1
    seeds = grid[brain][rng.choice(brain.sum(), n_regions, replace=False)]
    labels = np.zeros(len(grid), np.int16)
    labels[brain] = cKDTree(seeds).query(grid[brain])[1] + 1
    labels = labels.reshape(SHAPE)
    atlas = os.path.join(folder, "atlas.nii.gz")
    nib.save(nib.Nifti1Image(labels, AFFINE), atlas)
    latent = rng.normal(size=(n_t, 10))
    mixing = rng.normal(size=(10, n_regions))
    signals = 100 + 5 * latent @ mixing + rng.normal(size=(n_t, n_regions))
    path = os.path.join(folder, "sub-01_task-rest_bold.nii")
    inside = labels > 0

    def volume(t):
        vol = rng.normal(0, 20, SHAPE).astype(np.float32)
        vol[inside] += signals[t, labels[inside] - 1]
        return vol

    write_nifti_series(path, AFFINE, n_t, volume, tr=2.0)
    if gzip:
        subprocess.run(["gzip", "-1", "-k", path], check=True)
        path += ".gz"
    return path, atlas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--regions", type=int, default=120)
    parser.add_argument("--gzip", action="store_true", help="benchmark a .nii.gz series")
    args = parser.parse_args()
    ns = os.path.join(os.path.dirname(sys.executable), "neurostation")
    with tempfile.TemporaryDirectory(prefix="bench-fmri-") as folder:
        print(f"writing {' x '.join(map(str, SHAPE))} x {args.volumes} float32 series, "
              f"{args.regions} regions ...", flush=True)
        series, atlas = make_data(folder, args.volumes, args.regions, args.gzip)
        size = os.path.getsize(series) / 2**20
        subprocess.run(["cat", series], stdout=subprocess.DEVNULL, check=True)  # warm cache
        ts, ours_m = os.path.join(folder, "ts.tsv"), os.path.join(folder, "m.tsv")
        ref_m = os.path.join(folder, "ref.npy")
        rows = []
        for side, commands in (
            ("nilearn", [[sys.executable, "-c", NILEARN, series, atlas, ref_m]]),
            ("neurostation", [[ns, "fmri-timeseries", series, atlas, "-o", ts],
                              [ns, "connectivity", ts, "-o", ours_m]]),
        ):
            runs = [run_measured(cmd) for cmd in commands]
            seconds, rss = sum(t for t, _ in runs), max(m for _, m in runs)
            rows.append((side, seconds, rss))
        ours = np.loadtxt(ours_m, skiprows=1, usecols=range(1, args.regions + 1))
        diff = np.abs(ours - np.load(ref_m)).max()
        print(f"\nseries {os.path.basename(series)} ({size:.0f} MB), {args.regions} regions, "
              f"{args.volumes} volumes")
        print(f"{'side':<14}{'wall s':>9}{'peak RSS MB':>14}")
        for side, seconds, rss in rows:
            print(f"{side:<14}{seconds:>9.2f}{rss:>14.0f}")
        (_, t_ref, m_ref), (_, t_ours, m_ours) = rows
        print(f"speed ratio (nilearn time / ours): {t_ref / t_ours:.2f}x; memory ratio "
              f"(nilearn RSS / ours): {m_ref / m_ours:.1f}x; max |matrix difference| {diff:.1e}")


if __name__ == "__main__":
    main()
