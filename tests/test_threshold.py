"""`neurostation threshold`: on volumes spanning many boxes, each global method gives exactly
scikit-image's threshold on the whole volume in memory (li on floats: to its fixed point, within
1e-5 of the range), and the mask is `image > t` (or <= with --invert); bad input gets one
`error:` line, exit 2, and no output."""

import json

import numpy as np
import pytest
import tifffile
from skimage.filters import (threshold_li, threshold_niblack, threshold_otsu, threshold_sauvola,
                             threshold_triangle, threshold_yen)
from test_ingest import read_with_tensorstore
from test_qc import write_ome

from neurostation.chunks.boxes import Box
from neurostation.cli import main
from neurostation.processing import local_threshold
from neurostation.processing import threshold as threshold_volume
from neurostation.visualize.sources import open_volume_source

VOXEL_UM = (0.5, 0.5, 2.0)
SKIMAGE = {"otsu": threshold_otsu, "li": threshold_li, "yen": threshold_yen,
           "triangle": threshold_triangle}


@pytest.fixture
def small_boxes(monkeypatch):
    """Passes over boxes of a few hundred voxels: the test volumes span dozens of them."""
    monkeypatch.setattr(threshold_volume, "BOX_BUDGET", 16 * 16 * 8)


def bimodal(dtype):
    """A 23 x 45 x 50 (z, y, x) volume: dim noisy background, brighter blobs, skewed tails."""
    rng = np.random.default_rng(11)
    z, y, x = np.mgrid[:23, :45, :50]
    blobs = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + 9 * (z - cz) ** 2) / 30.0)
                for cx, cy, cz in rng.uniform((0, 0, 0), (50, 45, 23), (10, 3)))
    unit = np.clip(0.15 + 0.6 * np.minimum(blobs, 1) + rng.gamma(2.0, 0.05, z.shape), 0, 1)
    if dtype == np.uint8:
        return (unit * 255).astype(np.uint8)
    if dtype == np.uint16:
        return (unit * 40000 + 100).astype(np.uint16)
    return (unit * 3.7 - 1.2).astype(np.float32)


@pytest.fixture(params=["uint8", "uint16", "float32"])
def stack(request, tmp_path):
    zyx = bimodal(np.dtype(request.param).type)
    return write_ome(tmp_path / "stack.ome.tif", zyx, VOXEL_UM), zyx


def reported(path):
    header, row = open(path).read().splitlines()
    assert header.split("\t") == ["method", "threshold", "min", "max"]
    return row.split("\t")


@pytest.mark.parametrize("method", sorted(SKIMAGE))
def test_threshold_equals_skimage_and_mask_is_image_above_it(tmp_path, stack, small_boxes, method,
                                                             capsys):
    path, zyx = stack
    out, report = tmp_path / "mask.tif", tmp_path / "t.tsv"
    assert len(threshold_volume.pass_boxes(open_volume_source(path, str(tmp_path)))) > 20
    assert main(["threshold", path, "-o", str(out), "--method", method, "--report", str(report)]) == 0
    name, value, low, high = reported(report)
    t = float(value)
    expected = SKIMAGE[method](zyx)
    if method == "li" and zyx.dtype.kind == "f":
        assert abs(t - float(expected)) <= 1e-5 * float(zyx.max() - zyx.min())
    else:
        assert t == float(expected)
    assert name == method and float(low) == float(zyx.min()) and float(high) == float(zyx.max())
    assert f"threshold ({method}): {t!r}" in capsys.readouterr().out
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX"
        mask = tif.asarray()
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, zyx > t)
    assert 0.02 < mask.mean() < 0.98  # a real split
    np.testing.assert_allclose(open_volume_source(str(out), str(tmp_path)).voxel_nm,
                               [v * 1000 for v in VOXEL_UM])


def test_li_on_floats_converges_where_skimage_does():
    """skimage's own fixed point (tolerance 0) is where the passes stop."""
    zyx = bimodal(np.float32)
    t = float(threshold_li(zyx))
    tight = float(threshold_li(zyx, tolerance=1e-12))
    assert abs(t - tight) <= 1e-5 * float(zyx.max() - zyx.min())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_precomputed_mask_inverted_and_manual(tmp_path, small_boxes, jobs):
    zyx = bimodal(np.uint16)
    path = write_ome(tmp_path / "stack.ome.tif", zyx, VOXEL_UM)
    out = tmp_path / "vol"
    assert main(["threshold", path, "-o", str(out), "--method", "manual", "--value", "20000",
                 "--invert", "--chunk-size", "16,16,8", "--jobs", jobs]) == 0
    info = json.loads((out / "info").read_text())
    assert info["type"] == "segmentation" and info["data_type"] == "uint8"
    assert info["scales"][0]["resolution"] == [500.0, 500.0, 2000.0]
    mip0 = read_with_tensorstore(out)[..., 0].transpose(2, 1, 0)
    np.testing.assert_array_equal(mip0, (zyx <= 20000).astype(np.uint8))
    record = json.loads((out / "neurostation.json").read_text())
    assert record["complete"] is True and record["threshold"] == 20000.0


def test_parallel_passes_give_the_same_threshold(tmp_path, small_boxes):
    zyx = bimodal(np.float32)
    path = write_ome(tmp_path / "stack.ome.tif", zyx, VOXEL_UM)
    for method in ("otsu", "li"):
        assert main(["threshold", path, "-o", str(tmp_path / "m.tif"), "--method", method,
                     "--jobs", "2", "--report", str(tmp_path / "t.tsv")]) == 0
        t = float(reported(tmp_path / "t.tsv")[1])
        assert abs(t - float(SKIMAGE[method](zyx))) <= 1e-5 * float(zyx.max() - zyx.min())


def run_cli(cli, *args):
    """(exit code, the error line), checking it is the one error line after the progress lines."""
    result = cli("threshold", *args)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("progress: ")]
    assert len(lines) == 1, result.stderr
    return result.returncode, lines[0]


@pytest.mark.parametrize("options,message", [
    (["--method", "manual", "--value", "300"], "--value 300.0 is outside the data's range"),
    (["--method", "manual", "--value", "-1"], "is outside the data's range"),
    (["--method", "manual"], "--method manual needs --value"),
    (["--method", "otsu", "--value", "3"], "--value applies to --method manual"),
])
@pytest.mark.parametrize("output", ["out.tif", "vol"])
def test_bad_parameters_fail_in_one_line_and_leave_nothing(tmp_path, cli, options, message,
                                                           output):
    path = write_ome(tmp_path / "stack.ome.tif", bimodal(np.uint8), VOXEL_UM)
    code, err = run_cli(cli, path, "-o", tmp_path / output, "--report", tmp_path / "t.tsv", *options)
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.ome.tif"]


def test_bad_method_constant_volume_missing_info_and_nan(tmp_path, cli):
    path = write_ome(tmp_path / "stack.ome.tif", bimodal(np.uint8), VOXEL_UM)
    code, err = run_cli(cli, path, "-o", tmp_path / "o.tif", "--method", "bernsen")
    assert code == 2 and "invalid choice: 'bernsen'" in err
    write_ome(tmp_path / "flat.ome.tif", np.full((4, 8, 8), 7, np.uint16))
    code, err = run_cli(cli, tmp_path / "flat.ome.tif", "-o", tmp_path / "o.tif", "--method", "otsu")
    assert code == 2 and err == "error: the volume is constant (7); there is nothing to threshold"
    (tmp_path / "novol").mkdir()
    code, err = run_cli(cli, tmp_path / "novol", "-o", tmp_path / "o", "--method", "li")
    assert code == 2 and err.startswith("error: ") and "info" in err and "\n" not in err
    nan = bimodal(np.float32)
    nan[3, 4, 5] = np.nan
    write_ome(tmp_path / "nan.ome.tif", nan)
    code, err = run_cli(cli, tmp_path / "nan.ome.tif", "-o", tmp_path / "o.tif", "--method", "yen")
    assert code == 2 and "NaN or infinite values" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "flat.ome.tif", "nan.ome.tif", "novol", "stack.ome.tif"]


def test_multichannel_input_is_refused(tmp_path, cli):
    rgb = np.random.default_rng(2).integers(0, 255, (3, 10, 12, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", metadata={"axes": "ZYXS"})
    code, err = run_cli(cli, tmp_path / "rgb.tif", "-o", tmp_path / "o.tif", "--method", "otsu")
    assert code == 2 and "3 channels; threshold takes one channel" in err
    assert not (tmp_path / "o.tif").exists()


# --- local thresholds (sauvola, niblack) --------------------------------------------------------

LOCAL = {"sauvola": threshold_sauvola, "niblack": threshold_niblack}


@pytest.fixture
def small_tiles(monkeypatch, small_boxes):
    """Local-threshold tiles of a few thousand voxels with their halo: dozens per volume."""
    monkeypatch.setattr(local_threshold, "BOX_VOXELS", 6000)


def mismatches(mask, zyx, t_ref):
    """(voxels whose mask differs from zyx > t_ref, those of them within float rounding of t_ref:
    1e-6 of the data's range)."""
    wrong = mask.astype(bool) != (zyx > t_ref)
    near = np.abs(zyx.astype(np.float64) - t_ref) <= 1e-6 * float(zyx.max() - zyx.min())
    return int(wrong.sum()), int((wrong & near).sum())


@pytest.mark.parametrize("method", sorted(LOCAL))
def test_local_threshold_equals_skimage_with_an_anisotropic_window(tmp_path, stack, small_tiles,
                                                                   method):
    """A 5 um window on 0.5 x 0.5 x 2 um voxels is 11 x 11 x 3 voxels; the mask equals
    image > skimage's local threshold on the whole volume, over tiles of 8 x 8 x 16 voxels."""
    path, zyx = stack
    out, report = tmp_path / "mask.tif", tmp_path / "t.tsv"
    source = open_volume_source(path, str(tmp_path))
    assert len(local_threshold.tiles(Box((0, 0, 0), source.shape),
                                     local_threshold.tile_core((5, 5, 1)))) > 20
    assert main(["threshold", path, "-o", str(out), "--method", method, "--window", "5",
                 "--unit", "um", "--k", "0.3", "--report", str(report)]) == 0
    r = {np.uint8: 127.5, np.uint16: 32767.5, np.float32: 1.0}[zyx.dtype.type]
    options = {"r": r} if method == "sauvola" else {}
    t_ref = LOCAL[method](zyx, (3, 11, 11), k=0.3, **options)
    mask = tifffile.imread(out)
    assert mask.dtype == np.uint8 and 0.05 < mask.mean() < 0.95
    assert mismatches(mask, zyx, t_ref) == (0, 0)
    header, row = open(report).read().splitlines()
    assert header.split("\t") == ["method", "window_x", "window_y", "window_z", "k", "r", "min", "max"]
    assert row.split("\t")[:6] == [method, "11", "11", "3", "0.3", repr(r) if options else ""]


@pytest.mark.parametrize("method", sorted(LOCAL))
def test_local_threshold_per_plane(tmp_path, small_tiles, method):
    """--2d: each xy plane on its own, as skimage on each 2D slice."""
    zyx = bimodal(np.float32)
    path = write_ome(tmp_path / "stack.ome.tif", zyx, VOXEL_UM)
    assert main(["threshold", path, "-o", str(tmp_path / "m.tif"), "--method", method,
                 "--window", "9", "--2d", "--k", "-0.1" if method == "niblack" else "0.5"]) == 0
    k = -0.1 if method == "niblack" else 0.5
    t_ref = np.stack([LOCAL[method](plane, 9, k=k) for plane in zyx])
    assert mismatches(tifffile.imread(tmp_path / "m.tif"), zyx, t_ref) == (0, 0)


def test_local_threshold_precomputed_inverted_in_two_processes(tmp_path, small_boxes):
    zyx = bimodal(np.uint16)
    path = write_ome(tmp_path / "stack.ome.tif", zyx, VOXEL_UM)
    out = tmp_path / "vol"
    assert main(["threshold", path, "-o", str(out), "--method", "sauvola", "--invert",
                 "--chunk-size", "16,16,8", "--jobs", "2"]) == 0
    t_ref = threshold_sauvola(zyx, 15)
    mip0 = read_with_tensorstore(out)[..., 0].transpose(2, 1, 0)
    assert mismatches(1 - mip0, zyx, t_ref) == (0, 0)
    record = json.loads((out / "neurostation.json").read_text())
    assert record["complete"] is True and record["window"] == [15, 15, 15]
    assert record["r"] == 32767.5 and record["k"] == 0.2


@pytest.mark.parametrize("options,message", [
    (["--method", "sauvola", "--window", "14"], "--window must be an odd number of voxels (3, 5, 7, ...), got 14"),
    (["--method", "sauvola", "--window", "1", "--2d"], "--window 1 is 1 voxel along x; a local threshold needs at least 3"),
    (["--method", "niblack", "--window", "3", "--unit", "um"], "--window 3 um is 1 voxel along z; a local threshold needs at least 3 (--2d: a window in each xy plane)"),
    (["--method", "sauvola", "--window", "61"], "--window 61 is 61 voxels along x, more than the volume's 50"),
    (["--method", "sauvola", "--window", "30", "--unit", "um"], "--window 30 um is 61 voxels along x, more than the volume's 50"),
    (["--method", "sauvola", "--k", "1.5"], "--k must be within [0, 1] for sauvola, got 1.5"),
    (["--method", "niblack", "--k", "-3"], "--k must be within [-2, 2] for niblack, got -3"),
    (["--method", "niblack", "--r", "10"], "--r applies to --method sauvola, not niblack"),
    (["--method", "sauvola", "--r", "0"], "--r must be positive, got 0"),
    (["--method", "otsu", "--window", "5"], "--window applies to --method sauvola or niblack, not otsu"),
    (["--method", "sauvola", "--unit", "um"], "--unit um needs --window"),
])
def test_bad_local_parameters(tmp_path, capsys, options, message):
    """In this process (the one-line exit-2 contract of the CLI is tested above)."""
    path = write_ome(tmp_path / "stack.ome.tif", bimodal(np.uint8), VOXEL_UM)
    code = main(["threshold", path, "-o", str(tmp_path / "out.tif"), "--report",
                 str(tmp_path / "t.tsv"), *options])
    lines = [line for line in capsys.readouterr().err.splitlines()
             if not line.startswith("progress: ")]
    assert code == 2 and lines == [f"error: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.ome.tif"]
