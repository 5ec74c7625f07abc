"""`neurostation seed-map`: equals voxel-wise numpy correlation with the seed mean (and
nilearn's sphere seed) to 1e-6 whatever the slab size; planted correlations come back;
Fisher z; bad inputs."""

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiSpheresMasker

SHAPE = (12, 10, 8)
T = 60


def correlation_map(data, seed_ts):
    """Reference: Pearson r of every voxel with the seed series, on the whole array."""
    flat = data.reshape(-1, data.shape[-1])
    r = np.array([np.corrcoef(v, seed_ts)[0, 1] if v.std() > 0 else 0.0 for v in flat])
    return r.reshape(data.shape[:-1])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A series whose seed box (label 3) carries a signal s; a second box holds 0.6 s plus
    noise of variance 0.64 (so r = 0.6); the rest is noise; one voxel is constant."""
    rng = np.random.default_rng(1)
    s = rng.standard_normal(T)
    data = rng.standard_normal(SHAPE + (T,)) + 100
    data[2:4, 2:4, 1:3] = 100 + s + 0.1 * rng.standard_normal((2, 2, 2, T))
    data[7:10, 5:8, 4:7] = 100 + 0.6 * s + 0.8 * rng.standard_normal((3, 3, 3, T))
    data[0, 0, 0] = 5.0
    labels = np.zeros(SHAPE, np.int16)
    labels[2:4, 2:4, 1:3] = 3
    labels[8, 8, 6] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-10, -8, -6)
    folder = tmp_path_factory.mktemp("seedmap")
    series = folder / "sub-01_task-rest_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), series)  # float64: nilearn keeps the type
    nib.save(nib.Nifti1Image(labels, affine), folder / "labels.nii.gz")
    stored = nib.load(series).get_fdata()
    return {"series": str(series), "labels": str(folder / "labels.nii.gz"), "data": stored,
            "affine": affine, "labels_array": labels}


@pytest.mark.parametrize("memory", ["256", "0.05"])  # one slab, or one plane per slab
def test_equals_numpy_on_whole_array(cli, planted, tmp_path, memory):
    out = tmp_path / "map.nii.gz"
    proc = cli("seed-map", planted["series"], "--seed-mask", planted["labels"], "--seed-label",
               "3", "--max-memory", memory, "-o", out)
    assert proc.returncode == 0, proc.stderr
    data = planted["data"]
    seed_ts = data[planted["labels_array"] == 3].mean(axis=0)
    expected = correlation_map(data, seed_ts)
    img = nib.load(out)
    assert img.shape == SHAPE and np.allclose(img.affine, planted["affine"])
    assert np.abs(img.get_fdata() - expected).max() < 1e-6
    assert "1 voxel(s) with a constant series set to 0" in proc.stdout
    if memory != "256":
        assert f"{SHAPE[2]} slab(s) of 1 plane(s)" in proc.stdout


def test_planted_correlation_recovered(cli, planted, tmp_path):
    out = tmp_path / "z.nii.gz"
    proc = cli("seed-map", planted["series"], "--seed-mask", planted["labels"], "--seed-label",
               "3", "--fisher-z", "-o", out)
    assert proc.returncode == 0, proc.stderr
    z = nib.load(out).get_fdata()
    r = np.tanh(z)
    assert abs(np.median(r[7:10, 5:8, 4:7]) - 0.6) < 0.12
    assert r[2:4, 2:4, 1:3].min() > 0.95
    noise = np.ones(SHAPE, bool)
    noise[2:4, 2:4, 1:3] = noise[7:10, 5:8, 4:7] = False
    assert np.abs(r[noise]).mean() < 0.15
    seed_ts = planted["data"][planted["labels_array"] == 3].mean(axis=0)
    expected = np.arctanh(np.clip(correlation_map(planted["data"], seed_ts), -1 + 1e-7, 1 - 1e-7))
    assert np.abs(z - expected).max() < 1e-5


def test_sphere_seed_equals_nilearn(cli, planted, tmp_path):
    centre = (-4.0, -2.0, -2.0)  # world mm; radius 5 mm with 2 mm voxels: no voxel on the border
    masker = NiftiSpheresMasker([centre], radius=5.0, standardize=None)
    seed_ts = masker.fit_transform(planted["series"])[:, 0]
    out = tmp_path / "sphere.nii.gz"
    proc = cli("seed-map", planted["series"], "--sphere=" + ",".join(map(str, centre)),
               "--radius", "5", "-o", out)
    assert proc.returncode == 0, proc.stderr
    expected = correlation_map(planted["data"], seed_ts)
    assert np.abs(nib.load(out).get_fdata() - expected).max() < 1e-6


def test_real_series_from_nibabel(cli, data, tmp_path):
    """nibabel's functional.nii (17 x 21 x 3 x 20), sphere seed, compared with nilearn."""
    series = data("functional.nii")
    img = nib.load(series)
    centre = img.affine @ [8, 10, 1, 1]
    masker = NiftiSpheresMasker([tuple(centre[:3])], radius=8.0, standardize=None)
    seed_ts = masker.fit_transform(series)[:, 0]
    out = tmp_path / "f.nii.gz"
    proc = cli("seed-map", series, "--sphere=" + ",".join(f"{v:g}" for v in centre[:3]),
               "--radius", "8", "-o", out)
    assert proc.returncode == 0, proc.stderr
    expected = correlation_map(img.get_fdata(), seed_ts)
    assert np.abs(nib.load(out).get_fdata() - expected).max() < 1e-6


def bad(cli, tmp_path, *args):
    proc = cli("seed-map", *args, "-o", tmp_path / "out.nii.gz")
    assert proc.returncode == 2
    assert not (tmp_path / "out.nii.gz").exists()
    return proc.stderr


def test_3d_series_refused(cli, planted, tmp_path):
    path = tmp_path / "anat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.float32), np.eye(4)), path)
    err = bad(cli, tmp_path, path, "--sphere", "0,0,0")
    assert "anat.nii.gz is a 3D image (12 x 10 x 8); this step needs a 4D series" in err


def test_too_few_time_points(cli, tmp_path):
    path = tmp_path / "short.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE + (2,), np.float32), np.eye(4)), path)
    assert "short.nii.gz has 2 time point(s); at least 3 are needed" in bad(
        cli, tmp_path, path, "--sphere", "0,0,0")


def test_seed_outside_and_missing_label(cli, planted, tmp_path):
    assert "the seed sphere at (500.0, 0.0, 0.0) mm lies outside" in bad(
        cli, tmp_path, planted["series"], "--sphere", "500,0,0")
    assert "has no voxel with label 7" in bad(
        cli, tmp_path, planted["series"], "--seed-mask", planted["labels"], "--seed-label", "7")


def test_constant_seed(cli, planted, tmp_path):
    # label 1 is the voxel (8, 8, 6)... made constant in a copy of the series
    data = planted["data"].copy()
    data[8, 8, 6] = 3.0
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), planted["affine"]), path)
    assert "seed's mean time series in flat.nii.gz is constant" in bad(
        cli, tmp_path, path, "--seed-mask", planted["labels"], "--seed-label", "1")
