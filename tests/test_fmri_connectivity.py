"""`neurostation connectivity`: a planted correlation matrix comes back exactly; correlation,
partial correlation and covariance equal nilearn's ConnectivityMeasure with scikit-learn's
EmpiricalCovariance or LedoitWolf to 1e-6; group mean, per-subject edges, heatmap, BIDS labels."""

import numpy as np
import pandas as pd
import pytest
from nilearn.connectome import ConnectivityMeasure
from PIL import Image
from sklearn.covariance import EmpiricalCovariance, LedoitWolf

from fmri_synth import exact_signals

CORR = np.array([[1.0, 0.8, 0.1, 0.0, 0.0], [0.8, 1.0, 0.0, -0.3, 0.2],
                 [0.1, 0.0, 1.0, 0.5, 0.0], [0.0, -0.3, 0.5, 1.0, 0.0],
                 [0.0, 0.2, 0.0, 0.0, 1.0]])
NAMES = ["V1", "V2", "M1", "S1", "PFC"]


def write_ts(folder, name, signals):
    path = folder / name
    pd.DataFrame(signals, columns=NAMES).to_csv(path, sep="\t", index=False, float_format="%.17g")
    return path


@pytest.fixture
def group(tmp_path):
    """Three subjects' tables (BIDS names), 80 volumes, planted correlation CORR."""
    signals = [exact_signals(CORR, 80, seed=s) for s in (1, 2, 3)]
    paths = [write_ts(tmp_path, f"sub-0{k}_ses-1_task-rest_timeseries.tsv", s)
             for k, s in zip((3, 1, 2), signals)]
    return paths, signals


def read_matrix(path):
    frame = pd.read_csv(path, sep="\t", index_col=0)
    assert list(frame.index) == list(frame.columns)
    return frame


def run_ok(cli, *args):
    res = cli("connectivity", *args)
    assert res.returncode == 0, res.stderr
    return res


def test_planted_correlation_and_heatmap(cli, group, tmp_path):
    paths, _ = group
    out, png = tmp_path / "m.tsv", tmp_path / "m.png"
    run_ok(cli, paths[0], "-o", out, "--heatmap", png)
    got = read_matrix(out)
    assert list(got.columns) == NAMES
    np.testing.assert_allclose(got.to_numpy(), CORR, atol=1e-9)
    with Image.open(png) as im:
        assert im.size == (800, 700)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert (rgb[..., 0] - rgb[..., 2] > 100).any() and (rgb[..., 2] - rgb[..., 0] > 100).any()


@pytest.mark.parametrize("kind,estimator,nilearn_kind,cov,standardize", [
    ("correlation", "empirical", "correlation", EmpiricalCovariance, True),
    ("partial-correlation", "empirical", "partial correlation", EmpiricalCovariance, True),
    ("correlation", "ledoit-wolf", "correlation", LedoitWolf, True),
    ("partial-correlation", "ledoit-wolf", "partial correlation", LedoitWolf, True),
    ("covariance", "empirical", "covariance", EmpiricalCovariance, False),
])
def test_group_equals_nilearn(cli, group, tmp_path, kind, estimator, nilearn_kind, cov,
                              standardize):
    paths, _ = group
    rng = np.random.default_rng(9)
    noisy = [write_ts(tmp_path, f"sub-0{k}_noisy.tsv", s + rng.normal(0, 8, s.shape))
             for k, s in enumerate(group[1], 1)]
    out, edges = tmp_path / "m.tsv", tmp_path / "edges.tsv"
    run_ok(cli, *noisy, "-o", out, "--edges", edges, "--kind", kind, "--estimator", estimator)
    data = [pd.read_csv(p, sep="\t").to_numpy() for p in noisy]
    measure = ConnectivityMeasure(cov_estimator=cov(), kind=nilearn_kind, standardize=standardize)
    mats = measure.fit_transform(data)
    np.testing.assert_allclose(read_matrix(out).to_numpy(), mats.mean(axis=0), atol=1e-6)
    table = pd.read_csv(edges, sep="\t")
    assert list(table["sample"]) == ["sub-01", "sub-02", "sub-03"]
    i, j = np.triu_indices(5, k=1)
    assert list(table.columns[3:]) == [f"{NAMES[a]}|{NAMES[b]}" for a, b in zip(i, j)]
    np.testing.assert_allclose(table.iloc[:, 3:].to_numpy(), mats[:, i, j], atol=1e-6)


def test_fisher_z_group_names_from_bids(cli, group, tmp_path):
    paths, _ = group
    out, edges = tmp_path / "m.tsv", tmp_path / "edges.tsv"
    run_ok(cli, *paths, "-o", out, "--edges", edges, "--fisher-z",
           "--names", "sub-03_ses-1_task-rest_bold.nii.gz", "sub-01_ses-1_task-rest_bold.nii.gz",
           "sub-02_ses-2_task-rest_bold.nii.gz")
    want = np.arctanh(CORR - np.eye(5))
    np.testing.assert_allclose(read_matrix(out).to_numpy(), want, atol=1e-9)
    table = pd.read_csv(edges, sep="\t", dtype={"session": str})
    assert list(table["sample"]) == ["sub-01_ses-1_task-rest", "sub-02_ses-2_task-rest",
                                     "sub-03_ses-1_task-rest"]
    assert list(table["subject"]) == ["01", "02", "03"] or list(table["subject"]) == [1, 2, 3]
    assert list(table["session"]) == ["1", "2", "1"]
    np.testing.assert_allclose(table["V1|V2"], np.arctanh(0.8), atol=1e-9)


def fails(cli, *args):
    res = cli("connectivity", *args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    return res.stderr


def test_bad_inputs(cli, group, tmp_path):
    paths, signals = group
    other = tmp_path / "other.tsv"
    pd.DataFrame(signals[0][:, :4], columns=NAMES[:4]).to_csv(other, sep="\t", index=False)
    assert "have different regions" in fails(cli, paths[0], other, "-o", tmp_path / "m.tsv")
    short = write_ts(tmp_path, "short.tsv", signals[0][:2])
    assert "has 2 row(s) (volumes); at least 3" in fails(cli, short, "-o", tmp_path / "m.tsv")
    assert "--fisher-z applies to correlations" in fails(cli, paths[0], "-o", tmp_path / "m.tsv",
                                                         "--kind", "covariance", "--fisher-z")
    assert not (tmp_path / "m.tsv").exists()
