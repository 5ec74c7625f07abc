"""`neurostation fmri-timeseries`: region means equal nilearn's NiftiLabelsMasker (defaults,
detrend + standardize, band-pass, confounds) to 1e-6 on synthetic series with planted signals
and on nibabel's real 4D test files; names, resampling and bad inputs."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.image import resample_img
from nilearn.maskers import NiftiLabelsMasker

from fmri_synth import (block_atlas, exact_signals, mni_template, nibabel_data, quantile_atlas,
                        save, series_from_signals, AFFINE)

CORR = np.array([[1.0, 0.8, 0.1, 0.0], [0.8, 1.0, 0.0, -0.3], [0.1, 0.0, 1.0, 0.5],
                 [0.0, -0.3, 0.5, 1.0]] + [[0.0] * 4] * 0)


@pytest.fixture
def synth(tmp_path):
    """(series path, atlas path, planted signals) with 8 regions and 60 volumes, TR 2 s."""
    labels = block_atlas()
    corr = np.eye(8)
    corr[:4, :4] = CORR
    signals = exact_signals(corr, 60, seed=3)
    series = save(series_from_signals(labels, signals), tmp_path, "sub-01_task-rest_bold.nii.gz")
    atlas = save(nib.Nifti1Image(labels, AFFINE), tmp_path, "atlas.nii.gz")
    return series, atlas, signals


def table(path):
    return pd.read_csv(path, sep="\t")


def run_ok(cli, *args):
    res = cli("fmri-timeseries", *args)
    assert res.returncode == 0, res.stderr
    return res


def test_defaults_equal_planted_signals_and_nilearn(cli, synth, tmp_path):
    series, atlas, signals = synth
    out = tmp_path / "ts.tsv"
    run_ok(cli, series, atlas, "-o", out)
    got = table(out)
    assert list(got.columns) == [str(k) for k in range(1, 9)]
    assert got.shape == (60, 8)
    np.testing.assert_allclose(got.to_numpy(), signals, atol=1e-6)
    ref = NiftiLabelsMasker(atlas).fit_transform(series)
    np.testing.assert_allclose(got.to_numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("options,masker", [
    (["--detrend", "--standardize"], dict(detrend=True, standardize="zscore_sample")),
    (["--high-pass", "0.01", "--low-pass", "0.1"], dict(high_pass=0.01, low_pass=0.1, t_r=2.0)),
    (["--detrend", "--low-pass", "0.08", "--tr", "1.5"], dict(detrend=True, low_pass=0.08,
                                                               t_r=1.5)),
])
def test_cleaning_equals_nilearn(cli, synth, tmp_path, options, masker):
    series, atlas, _ = synth
    out = tmp_path / "ts.tsv"
    run_ok(cli, series, atlas, "-o", out, *options)
    ref = NiftiLabelsMasker(atlas, **masker).fit_transform(series)
    np.testing.assert_allclose(table(out).to_numpy(), ref, atol=1e-6)


def fmriprep_confounds(path, n_t, seed=5):
    """An fMRIPrep-style confounds table: motion columns, derivatives with a leading n/a."""
    rng = np.random.default_rng(seed)
    motion = np.cumsum(rng.normal(0, 0.05, (n_t, 3)), axis=0)
    frame = pd.DataFrame(motion, columns=["trans_x", "trans_y", "rot_z"])
    frame["trans_x_derivative1"] = np.r_[np.nan, np.diff(motion[:, 0])]
    frame["global_signal"] = rng.normal(500, 3, n_t)
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return frame


def test_confounds_equal_nilearn_with_leading_na(cli, synth, tmp_path):
    series, atlas, _ = synth
    conf = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    frame = fmriprep_confounds(conf, 60)
    out = tmp_path / "ts.tsv"
    run_ok(cli, series, atlas, "-o", out, "--confounds", conf, "--standardize")
    filled = frame.fillna(frame.mean())  # n/a -> column mean, as documented
    ref = NiftiLabelsMasker(atlas, standardize="zscore_sample").fit_transform(
        series, confounds=filled.to_numpy())
    np.testing.assert_allclose(table(out).to_numpy(), ref, atol=1e-6)
    # Selected columns and dropped volumes (the n/a row is dropped with its volume).
    run_ok(cli, series, atlas, "-o", out, "--confounds", conf, "--drop-volumes", "2",
           "--confound-columns", "trans_x,trans_x_derivative1")
    img = nib.load(series)
    kept = nib.Nifti1Image(img.get_fdata()[..., 2:], img.affine, img.header)
    ref = NiftiLabelsMasker(atlas).fit_transform(
        kept, confounds=frame[["trans_x", "trans_x_derivative1"]].to_numpy()[2:])
    got = table(out)
    assert got.shape == (58, 8)
    np.testing.assert_allclose(got.to_numpy(), ref, atol=1e-6)


def test_real_series_with_resampled_mni_atlas(cli, tmp_path):
    """nibabel's example4d (128 x 96 x 24 x 2 is too short) -> functional.nii (20 volumes) with
    an atlas cut from its own mean image on a coarser grid: resampled with a warning."""
    func = nibabel_data("functional.nii")
    img = nib.load(func)
    fine = quantile_atlas(img, 3)
    coarse_affine = img.affine.copy()
    coarse_affine[:3, :3] *= 1.0  # same voxel size, shifted half a voxel: grids differ
    coarse_affine[:3, 3] += np.diag(img.affine)[:3] * 0.5
    atlas = resample_img(fine, target_affine=coarse_affine, target_shape=fine.shape,
                         interpolation="nearest", force_resample=True, copy_header=True)
    atlas_path = save(atlas, tmp_path, "atlas.nii.gz")
    names = tmp_path / "names.tsv"
    names.write_text("index\tname\n" + "".join(f"{k}\tregion_{k}\n" for k in range(1, 7)))
    out = tmp_path / "ts.tsv"
    res = run_ok(cli, func, atlas_path, "-o", out, "--label-names", names)
    assert "resampled to the series grid with nearest-neighbour" in res.stderr
    got = table(out)
    ref = NiftiLabelsMasker(atlas_path).fit_transform(func)
    assert list(got.columns) == [f"region_{k}" for k in range(1, 7)]
    np.testing.assert_allclose(got.to_numpy(), ref, atol=1e-6)


def test_mni_template_atlas_on_synthetic_mni_series(cli, tmp_path):
    """An atlas from nilearn's MNI152 grey-matter map, and a series on a 4 mm MNI grid."""
    mni = nib.load(mni_template())
    atlas = quantile_atlas(mni, 4, mask_below=0.3)
    atlas_path = save(atlas, tmp_path, "mni_atlas.nii.gz")
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = mni.affine[:3, 3]
    shape = tuple(int(np.ceil(s / 4)) for s in mni.shape)
    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.normal(100, 10, shape + (30,)).astype(np.float32), affine)
    series = save(img, tmp_path, "sub-02_task-rest_bold.nii.gz")
    out = tmp_path / "ts.tsv"
    run_ok(cli, series, atlas_path, "-o", out, "--detrend")
    # nilearn cleans float32 series in float32 (1e-5 off); give it the same values as float64.
    ref = NiftiLabelsMasker(atlas_path, detrend=True).fit_transform(
        nib.Nifti1Image(img.get_fdata(), affine))
    assert table(out).shape == (30, 8)
    np.testing.assert_allclose(table(out).to_numpy(), ref, atol=1e-6)


def fails(cli, *args):
    res = cli("fmri-timeseries", *args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    return res.stderr


def test_3d_input_is_refused(cli, data, tmp_path, synth):
    _, atlas, _ = synth
    msg = fails(cli, data("anatomical.nii"), atlas, "-o", tmp_path / "o.tsv")
    assert "is a 3D image" in msg and "needs a 4D series" in msg
    assert not (tmp_path / "o.tsv").exists()


def test_too_few_volumes(cli, tmp_path, synth):
    _, atlas, signals = synth
    short = save(series_from_signals(block_atlas(), signals[:2]), tmp_path, "short.nii.gz")
    assert "has 2 time point(s); at least 3 are needed" in fails(cli, short, atlas, "-o",
                                                                 tmp_path / "o.tsv")


def test_real_two_volume_series_refused(cli, tmp_path, synth):
    """nibabel's example4d.nii.gz is a real 4D series of only 2 volumes."""
    _, atlas, _ = synth
    msg = fails(cli, nibabel_data("example4d.nii.gz"), atlas, "-o", tmp_path / "o.tsv")
    assert "example4d.nii.gz has 2 time point(s); at least 3 are needed" in msg


def test_atlas_without_overlap(cli, tmp_path, synth):
    series, _, _ = synth
    far = AFFINE.copy()
    far[:3, 3] += 500.0
    atlas = save(nib.Nifti1Image(block_atlas(), far), tmp_path, "far.nii.gz")
    assert "does not overlap the series" in fails(cli, series, atlas, "-o", tmp_path / "o.tsv")


def test_vanished_labels_named(cli, tmp_path, synth):
    series, _, _ = synth
    fine_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    fine_affine[:3, 3] = AFFINE[:3, 3]
    labels = np.zeros((36, 30, 24), np.int16)
    labels[10:20, 10:20, 6:15] = 1
    labels[4, 4, 4] = 7  # a one-voxel region between grid points of the 3 mm series
    atlas = save(nib.Nifti1Image(labels, fine_affine), tmp_path, "fine.nii.gz")
    names = tmp_path / "names.tsv"
    names.write_text("1\tcortex\n7\ttiny_nucleus\n")
    msg = fails(cli, series, atlas, "-o", tmp_path / "o.tsv", "--label-names", names)
    assert "vanish" in msg and "tiny_nucleus (7)" in msg and "cortex" not in msg


def test_confounds_of_wrong_length(cli, tmp_path, synth):
    series, atlas, _ = synth
    conf = tmp_path / "conf.tsv"
    fmriprep_confounds(conf, 59)
    msg = fails(cli, series, atlas, "-o", tmp_path / "o.tsv", "--confounds", conf)
    assert "has 59 rows but the series has 60 volumes" in msg


def test_band_pass_options_checked(cli, tmp_path, synth):
    series, atlas, _ = synth
    out = tmp_path / "o.tsv"
    assert "below the Nyquist frequency 0.25 Hz (TR 2 s)" in fails(cli, series, atlas, "-o", out,
                                                                   "--low-pass", "0.3")
    assert "--high-pass 0.1 Hz must be below --low-pass 0.05 Hz" in fails(
        cli, series, atlas, "-o", out, "--high-pass", "0.1", "--low-pass", "0.05")
    assert "leaves fewer than 3 of the 60 volumes" in fails(cli, series, atlas, "-o", out,
                                                            "--drop-volumes", "58")
