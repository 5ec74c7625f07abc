"""`neurostation filter`: the exactness contract. On a volume spanning many boxes, every
filter equals scipy.ndimage / scikit-image run on the whole volume in memory (floats within
1e-5 relative to the data's range, integers exactly), 2D and 3D, with anisotropic voxels;
bad input gets one `error:` line, exit 2, and no output."""

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.exposure import equalize_adapthist
from skimage.filters import difference_of_gaussians
from skimage.morphology import ball, disk, white_tophat
from test_ingest import read_with_tensorstore
from test_qc import write_ome

from neurostation.chunks.boxes import Box, plan_boxes
from neurostation.chunks.halo import BORDER_MODES, crop_halo, read_with_halo
from neurostation.cli import main
from neurostation.processing import filter as filter_image
from neurostation.visualize.sources import open_volume_source

VOXEL_UM = (0.5, 0.5, 2.0)  # x, y, z: z four times coarser


@pytest.fixture
def small_boxes(monkeypatch):
    """Boxes of a few thousand voxels, so that the test volume spans dozens of them."""
    monkeypatch.setattr(filter_image, "BOX_BUDGET", 16 * 16 * 8 * 4)


@pytest.fixture
def stack(tmp_path):
    """A 23 x 45 x 50 (z, y, x) uint16 OME-TIFF: blobs on a ramp with noise; not box multiples."""
    rng = np.random.default_rng(5)
    z, y, x = np.mgrid[:23, :45, :50]
    blobs = sum(3000 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + 16 * (z - cz) ** 2) / 18.0)
                for cx, cy, cz in rng.uniform((0, 0, 0), (50, 45, 23), (12, 3)))
    zyx = (blobs + 20 * x + 10 * z + rng.integers(0, 400, z.shape)).astype(np.uint16)
    path = tmp_path / "stack.ome.tif"
    write_ome(path, zyx, VOXEL_UM)
    return path, zyx


def as_float(a):
    return a.astype(np.float64)


# (CLI options, in-memory reference on the (z, y, x) array) for each filter
CASES = {
    # 1 um: 2 voxels in x and y, 0.5 in z
    "gaussian-3d-um": (["--method", "gaussian", "--sigma", "1", "--unit", "um"],
                       lambda a: ndimage.gaussian_filter(as_float(a), (0.5, 2, 2), mode="reflect")),
    "gaussian-2d-voxels": (["--method", "gaussian", "--sigma", "1.5", "--2d", "--border", "mirror"],
                           lambda a: ndimage.gaussian_filter(as_float(a), (0, 1.5, 1.5), mode="mirror")),
    "dog-3d-nearest": (["--method", "dog", "--sigma", "1", "--high-sigma", "2", "--border", "nearest"],
                       lambda a: difference_of_gaussians(as_float(a), 1, 2, mode="nearest")),
    "dog-2d-um": (["--method", "dog", "--sigma", "0.5", "--unit", "um", "--2d"],
                  lambda a: np.stack([difference_of_gaussians(as_float(p), 1, 1.6, mode="reflect")
                                      for p in a])),
    "median-3d": (["--method", "median", "--size", "3"],
                  lambda a: ndimage.median_filter(a, 3, mode="reflect")),
    "median-2d-nearest": (["--method", "median", "--size", "4", "--2d", "--border", "nearest"],
                          lambda a: ndimage.median_filter(a, (1, 4, 4), mode="nearest")),
    "tophat-3d-ball": (["--method", "tophat", "--radius", "2"],
                       lambda a: white_tophat(a, ball(2), mode="reflect")),
    "tophat-2d-disk": (["--method", "tophat", "--radius", "3", "--2d"],
                       lambda a: np.stack([white_tophat(p, disk(3), mode="reflect") for p in a])),
    "tophat-3d-cube": (["--method", "tophat", "--radius", "1", "--footprint", "cube"],
                       lambda a: white_tophat(a, np.ones((3, 3, 3), bool), mode="reflect")),
}


def check_equal(result, expected):
    """Integers exactly; floats within 1e-5 of the reference's range."""
    if np.issubdtype(result.dtype, np.floating):
        assert result.dtype == np.float32
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5 * scale)
    else:
        assert result.dtype == expected.dtype
        np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_slab_wise_equals_in_memory_as_tiff(tmp_path, stack, small_boxes, case):
    """TIFF output: slabs of whole planes, one plane each here (halos in z)."""
    path, zyx = stack
    options, reference = CASES[case]
    out = tmp_path / "out.tif"
    assert main(["filter", str(path), "-o", str(out), *options]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX"
        result = tif.asarray()
    assert result.shape == zyx.shape
    expected = reference(zyx)
    check_equal(result, expected)
    assert not np.array_equal(result.astype(float), zyx.astype(float))  # it did filter
    # the voxel size travels with the data
    back = open_volume_source(str(out), str(tmp_path))
    np.testing.assert_allclose(back.voxel_nm, [v * 1000 for v in VOXEL_UM])


@pytest.mark.parametrize("case,jobs", [(case, "1") for case in sorted(CASES)]
                         + [("gaussian-3d-um", "2"), ("tophat-2d-disk", "2")])
def test_chunk_wise_equals_in_memory_as_precomputed(tmp_path, stack, small_boxes, case, jobs):
    """Precomputed output: boxes of 16 x 16 x 8 voxels or so (halos on every axis)."""
    path, zyx = stack
    options, reference = CASES[case]
    out = tmp_path / "vol"
    assert main(["filter", str(path), "-o", str(out), *options, "--chunk-size", "16,16,8",
                 "--jobs", jobs]) == 0
    info = json.loads((out / "info").read_text())
    assert info["scales"][0]["size"] == [50, 45, 23]
    assert info["scales"][0]["resolution"] == [500.0, 500.0, 2000.0]
    assert len(info["scales"]) >= 2  # with its pyramid
    mip0 = read_with_tensorstore(out)[..., 0].transpose(2, 1, 0)
    check_equal(mip0, reference(zyx))
    record = json.loads((out / "neurostation.json").read_text())
    assert record["complete"] is True and record["command"] == "filter"


@pytest.mark.parametrize("output", ["out.tif", "vol"])
def test_clahe_equals_skimage_per_whole_plane(tmp_path, stack, small_boxes, output):
    path, zyx = stack
    out = tmp_path / output
    extra = ["--chunk-size", "16,16,8"] if output == "vol" else []
    assert main(["filter", str(path), "-o", str(out), "--method", "clahe", "--kernel-size", "12",
                 "--clip-limit", "0.02", *extra]) == 0
    result = (tifffile.imread(out) if output == "out.tif"
              else read_with_tensorstore(out)[..., 0].transpose(2, 1, 0))
    expected = np.stack([equalize_adapthist(p, kernel_size=12, clip_limit=0.02) for p in zyx])
    check_equal(result, expected)


class ArraySource:
    """An in-memory (x, y, z) array as a box source."""

    def __init__(self, xyz):
        self.array, self.shape, self.channels = xyz, xyz.shape, 1

    def read(self, box):
        return self.array[box.slices()][..., None]


@pytest.mark.parametrize("mode", sorted(BORDER_MODES))
def test_halo_reads_neighbours_inside_and_the_mode_only_at_the_border(mode):
    xyz = np.random.default_rng(1).integers(0, 100, (20, 17, 9))
    source, halo = ArraySource(xyz), (3, 2, 4)
    whole = np.pad(xyz, [(h, h) for h in halo], mode=BORDER_MODES[mode])
    for box in plan_boxes(xyz.shape, (8, 8, 4)):
        grown = read_with_halo(source, box, halo, mode)[..., 0]
        window = tuple(slice(a, b + 2 * h) for a, b, h in zip(box.start, box.stop, halo))
        np.testing.assert_array_equal(grown, whole[window])
        np.testing.assert_array_equal(crop_halo(grown, halo), xyz[box.slices()])


def test_halo_of_a_box_inside_reads_only_real_voxels():
    xyz = np.arange(20 * 20 * 20).reshape(20, 20, 20)
    grown = read_with_halo(ArraySource(xyz), Box((5, 5, 5), (10, 10, 10)), (2, 2, 2), "constant")
    np.testing.assert_array_equal(grown[..., 0], xyz[3:12, 3:12, 3:12])


def run_cli(cli, *args):
    result = cli("filter", *args)
    return result.returncode, result.stderr.strip()


@pytest.mark.parametrize("options,message", [
    (["--method", "gaussian", "--sigma", "-1"], "--sigma must be a positive number, got -1"),
    (["--method", "gaussian"], "--sigma must be a positive number, got None"),
    (["--method", "median", "--size", "0"], "--size must be a positive number, got 0"),
    (["--method", "tophat", "--radius", "0"], "--radius must be a positive number, got 0"),
    (["--method", "dog", "--sigma", "2", "--high-sigma", "1"], "--high-sigma must be larger than --sigma"),
    (["--method", "clahe", "--clip-limit", "0"], "--clip-limit must be in (0, 1], got 0.0"),
    (["--method", "clahe", "--kernel-size", "1"], "--kernel-size must be 2 or more pixels"),
])
@pytest.mark.parametrize("output", ["out.tif", "vol"])
def test_bad_parameters_fail_in_one_line_and_leave_nothing(tmp_path, cli, stack, options,
                                                           message, output):
    path, _ = stack
    code, err = run_cli(cli, path, "-o", tmp_path / output, *options)
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.ome.tif"]


def test_physical_sigma_needs_a_voxel_size(tmp_path, cli):
    tifffile.imwrite(tmp_path / "bare.tif", np.zeros((4, 8, 8), np.uint8),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    code, err = run_cli(cli, tmp_path / "bare.tif", "-o", tmp_path / "o.tif", "--method",
                        "gaussian", "--sigma", "1", "--unit", "um")
    assert code == 2 and "input carries no voxel size" in err
    assert not (tmp_path / "o.tif").exists()


def test_missing_info_and_unstorable_dtype(tmp_path, cli):
    (tmp_path / "novol").mkdir()
    code, err = run_cli(cli, tmp_path / "novol", "-o", tmp_path / "o", "--method", "median")
    assert code == 2 and err.startswith("error: ") and "info" in err
    assert not (tmp_path / "o").exists()
    write_ome(tmp_path / "f64.ome.tif", np.ones((3, 8, 8)))  # float64 keeps its type: not storable
    code, err = run_cli(cli, tmp_path / "f64.ome.tif", "-o", tmp_path / "o", "--method", "median")
    assert code == 2 and "float64 cannot be stored" in err
    assert not (tmp_path / "o").exists()


def test_empty_volumes_are_refused(tmp_path, cli, data):
    info = json.loads(open(data("vol_ome/info")).read())
    info["scales"] = info["scales"][:1]
    info["scales"][0]["size"] = [20, 16, 0]
    (tmp_path / "empty_vol").mkdir()
    (tmp_path / "empty_vol" / "info").write_text(json.dumps(info))
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 8, 8), np.uint8),
                         photometric="minisblack", metadata={"axes": "ZYX"})
    for name, message in [("empty_vol", "not three positive numbers"), ("empty.tif", "truncated")]:
        code, err = run_cli(cli, tmp_path / name, "-o", tmp_path / "o.tif", "--method", "median")
        assert code == 2 and err.startswith("error: ") and message in err
        assert not (tmp_path / "o.tif").exists()


def test_precomputed_options_refused_for_tiff(tmp_path, cli, stack):
    code, err = run_cli(cli, stack[0], "-o", tmp_path / "o.tif", "--method", "median",
                        "--chunk-size", "8,8,8")
    assert code == 2 and "--chunk-size applies to precomputed output" in err


def test_channels_are_filtered_one_by_one(tmp_path, small_boxes):
    rng = np.random.default_rng(2)
    zyxc = rng.integers(0, 255, (5, 30, 34, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", zyxc, photometric="rgb", metadata={"axes": "ZYXS"})
    assert main(["filter", str(tmp_path / "rgb.tif"), "-o", str(tmp_path / "out.tif"),
                 "--method", "median", "--size", "3"]) == 0
    result = tifffile.imread(tmp_path / "out.tif")
    expected = np.stack([ndimage.median_filter(zyxc[..., c], 3) for c in range(3)], axis=-1)
    check_equal(result, expected)


def test_tiff_slabs_from_parallel_jobs_come_in_order(tmp_path, stack, small_boxes):
    path, zyx = stack
    options, reference = CASES["gaussian-3d-um"]
    assert main(["filter", str(path), "-o", str(tmp_path / "o.tif"), *options, "--jobs", "2"]) == 0
    check_equal(tifffile.imread(tmp_path / "o.tif"), reference(zyx))
