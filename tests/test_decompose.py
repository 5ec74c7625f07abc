"""`neurostation decompose`: equals scikit-learn FastICA/PCA on the same masked matrix;
planted spatial sources come back (|r| > 0.9); deterministic with --seed; bad inputs."""

import csv

import nibabel as nib
import numpy as np
import pytest
from nilearn.masking import compute_epi_mask
from sklearn.decomposition import PCA, FastICA

SHAPE = (16, 16, 8)
T = 80


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Three sparse spatial sources with their own time courses, mixed, plus noise; a mask
    that leaves out the border."""
    rng = np.random.default_rng(3)
    sources = np.zeros((3,) + SHAPE)
    sources[0, 2:7, 2:7, 1:4] = rng.laplace(3, 1, (5, 5, 3))
    sources[1, 9:14, 3:8, 3:7] = rng.laplace(3, 1, (5, 5, 4))
    sources[2, 4:10, 9:14, 2:6] = rng.laplace(3, 1, (6, 5, 4))
    courses = rng.standard_normal((T, 3))
    data = np.einsum("kxyz,tk->xyzt", sources, courses) + 0.2 * rng.standard_normal(SHAPE + (T,))
    data += 50
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:-1, 1:-1, :] = 1
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    folder = tmp_path_factory.mktemp("decompose")
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), folder / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), folder / "mask.nii.gz")
    return {"series": str(folder / "bold.nii.gz"), "mask": str(folder / "mask.nii.gz"),
            "sources": sources, "mask_array": mask.astype(bool), "affine": affine,
            "data": nib.load(folder / "bold.nii.gz").get_fdata()}


def run(cli, tmp_path, series, *options):
    maps, tc = tmp_path / "maps.nii.gz", tmp_path / "tc.tsv"
    proc = cli("decompose", series, "--maps", maps, "--timecourses", tc, *options)
    assert proc.returncode == 0, proc.stderr
    with open(tc) as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return nib.load(maps), rows, proc


def matrix(planted):
    m = planted["data"][planted["mask_array"]].T
    return m - m.mean(axis=0)


def assert_equal_up_to_sign(found, expected):
    for f, e in zip(found, expected):
        sign = np.sign(f @ e)
        assert np.abs(f - sign * e).max() < 1e-6 * max(1, np.abs(e).max())


def test_ica_equals_sklearn(cli, planted, tmp_path):
    img, rows, _ = run(cli, tmp_path, planted["series"], "--mask", planted["mask"],
                       "--components", "3", "--seed", "7")
    ica = FastICA(n_components=3, random_state=7, whiten="unit-variance", max_iter=1000)
    maps = ica.fit_transform(matrix(planted).T).T
    found = img.get_fdata()[planted["mask_array"]].T
    assert img.shape == SHAPE + (3,) and np.allclose(img.affine, planted["affine"])
    assert_equal_up_to_sign(found, maps)
    assert rows[0] == ["volume", "IC1", "IC2", "IC3"] and len(rows) == T + 1
    courses = np.array(rows[1:], float)[:, 1:].T
    assert_equal_up_to_sign(courses, ica.mixing_.T)
    assert not img.get_fdata()[~planted["mask_array"]].any()


def test_pca_equals_sklearn(cli, planted, tmp_path):
    img, rows, proc = run(cli, tmp_path, planted["series"], "--mask", planted["mask"],
                          "--method", "pca", "--components", "4")
    pca = PCA(n_components=4, svd_solver="full")
    scores = pca.fit_transform(matrix(planted))
    assert_equal_up_to_sign(img.get_fdata()[planted["mask_array"]].T, pca.components_)
    assert rows[0] == ["volume", "PC1", "PC2", "PC3", "PC4"]
    courses = np.array(rows[1:], float)[:, 1:].T
    assert np.allclose(np.abs(courses), np.abs(scores.T), rtol=1e-5, atol=1e-4)
    assert f"explained variance {100 * pca.explained_variance_ratio_.sum():.1f}%" in proc.stdout


def test_planted_sources_recovered(cli, planted, tmp_path):
    img, _, _ = run(cli, tmp_path, planted["series"], "--mask", planted["mask"],
                    "--components", "3", "--seed", "0")
    maps = img.get_fdata().reshape(-1, 3).T
    for source in planted["sources"]:
        best = max(abs(np.corrcoef(source.ravel(), m)[0, 1]) for m in maps)
        assert best > 0.9


def test_mask_computed_like_nilearn(cli, planted, tmp_path):
    img, _, proc = run(cli, tmp_path, planted["series"], "--components", "2")
    expected = compute_epi_mask(planted["series"]).get_fdata() > 0
    assert f"from {int(expected.sum())} mask voxels" in proc.stdout
    assert not img.get_fdata()[~expected].any()


def test_deterministic_with_seed(cli, planted, tmp_path):
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        img, rows, _ = run(cli, tmp_path / name, planted["series"], "--mask", planted["mask"],
                           "--components", "3", "--seed", "5")
        runs.append((img.get_fdata(), rows))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def bad(cli, tmp_path, *args):
    proc = cli("decompose", *args, "--maps", tmp_path / "m.nii.gz", "--timecourses",
               tmp_path / "t.tsv")
    assert proc.returncode == 2
    assert not (tmp_path / "m.nii.gz").exists() and not (tmp_path / "t.tsv").exists()
    return proc.stderr


def test_bad_inputs(cli, planted, tmp_path):
    three_d = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.float32), np.eye(4)), three_d)
    assert "t1.nii.gz is a 3D image (16 x 16 x 8); this step needs a 4D series" in bad(
        cli, tmp_path, three_d)
    short = tmp_path / "short.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE + (2,), np.float32), np.eye(4)), short)
    assert "has 2 time point(s); at least 3 are needed" in bad(cli, tmp_path, short)
    assert "--components must be between 1 and 80" in bad(
        cli, tmp_path, planted["series"], "--mask", planted["mask"], "--components", "81")
    far = np.diag([3.0, 3.0, 4.0, 1.0])
    far[:3, 3] = 1000
    empty = tmp_path / "far_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), far), empty)
    assert "mask far_mask.nii.gz selects no voxel of the series: no overlap" in bad(
        cli, tmp_path, planted["series"], "--mask", empty)
    noise = tmp_path / "noise.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.standard_normal(SHAPE + (5,)).astype(np.float32), np.eye(4)),
             noise)
    assert "the brain mask computed from the series (as nilearn's compute_epi_mask) is empty" \
        in bad(cli, tmp_path, noise)
