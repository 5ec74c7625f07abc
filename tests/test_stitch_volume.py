"""`neurostation stitch -o <folder or URL>`: the mosaic as a precomputed volume, blended box by
box, equals the TIFF mosaic pixel for pixel at every scale TensorStore reads; sections on a
common canvas; voxel size carried; an interrupted run is not complete and resumes."""

import json

import numpy as np
import pytest
import tifffile
from skimage.transform import downscale_local_mean
from test_ingest import read_with_tensorstore
from test_stitch import cut_tiles, read_table, source, two_tiles, write_tiles, xy  # noqa: F401 (fixtures)

from neurostation.cli import main
from neurostation.ingest import mosaic, mosaic_volume
from neurostation.io.precomputed import open_complete
from neurostation.errors import UserError


def run_stitch(tmp_path, paths, output, *options):
    return main(["stitch", *map(str, paths), "-o", str(output),
                 "--positions", str(tmp_path / "positions.tsv"), *map(str, options)])


@pytest.fixture
def small_boxes(monkeypatch):
    """Boxes of 64 x 64 px instead of megapixels, so that small test mosaics span many boxes."""
    monkeypatch.setattr(mosaic_volume, "BOX_BUDGET", 64 * 64)


def test_blending_region_by_region_equals_the_whole_canvas():
    rng = np.random.default_rng(3)
    tiles = [rng.integers(0, 65535, (40, 50)).astype(np.uint16) for _ in range(4)]
    positions = np.array([[0, 0], [41.3, 0.7], [0.2, 33.6], [42.05, 33.1]])
    shape = mosaic.canvas_shape(positions, (40, 50))
    whole = mosaic.blend(tiles, positions, shape, np.uint16)
    pieces = np.zeros_like(whole)
    for y0 in range(0, shape[0], 17):
        for x0 in range(0, shape[1], 23):
            region = (min(17, shape[0] - y0), min(23, shape[1] - x0))
            picked = mosaic.overlapping(positions, (40, 50), (y0, x0), region)
            assert len(picked) < 4 or (y0, x0) != (0, 0)
            pieces[y0:y0 + region[0], x0:x0 + region[1]] = mosaic.blend(
                [tiles[i] for i in picked], positions[picked], region, np.uint16, (y0, x0))
    np.testing.assert_array_equal(pieces, whole)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_volume_equals_tiff_mosaic_at_every_scale(tmp_path, source, small_boxes, jobs):
    tiles, _ = cut_tiles(source, 3, 3, 96, 0.2, jitter=4, seed=11)
    paths = write_tiles(tmp_path / "tiles", tiles, resolution=(2e4, 2e4),
                        resolutionunit="CENTIMETER")  # 0.5 um pixels
    assert run_stitch(tmp_path, paths, tmp_path / "m.tif", "--grid", "3x3", "--overlap", "0.2") == 0
    picture = tifffile.imread(tmp_path / "m.tif")
    tiff_positions = xy(read_table(tmp_path / "positions.tsv"))
    vol = tmp_path / "vol"
    assert run_stitch(tmp_path, paths, vol, "--grid", "3x3", "--overlap", "0.2",
                      "--chunk-size", "32,32,1", "--jobs", jobs) == 0
    np.testing.assert_array_equal(xy(read_table(tmp_path / "positions.tsv")), tiff_positions)

    info = json.loads((vol / "info").read_text())
    assert info["type"] == "image" and info["data_type"] == "uint8"
    scales = info["scales"]
    assert scales[0]["size"] == [picture.shape[1], picture.shape[0], 1]
    assert scales[0]["resolution"] == [500.0, 500.0, 500.0]  # the tiles' pixel size, in nm
    assert scales[0]["chunk_sizes"] == [[32, 32, 1]]
    assert len(scales) >= 3 and not list(vol.rglob("*.gz"))
    mip0 = read_with_tensorstore(vol)
    np.testing.assert_array_equal(mip0[:, :, 0, 0].T, picture)  # pixel for pixel
    previous = picture.astype(float)
    for k in range(1, len(scales)):
        level = read_with_tensorstore(vol, k)[:, :, 0, 0].T
        assert list(level.shape[::-1]) == scales[k]["size"][:2]
        # images average 2 x 2, rounded down (the last row and column may be half windows)
        expected = downscale_local_mean(previous, (2, 2))
        assert np.abs(level[:-1, :-1] - expected[:-1, :-1]).max() <= 1
        previous = level.astype(float)
    record = json.loads((vol / "neurostation.json").read_text())
    assert record["complete"] is True and record["command"] == "stitch"
    assert record["sources"] == [f"tile_{i}.tif" for i in range(1, 10)]
    assert open_complete(vol).info["scales"][0]["size"][:2] == [picture.shape[1], picture.shape[0]]


def test_serial_sections_of_different_sizes_on_a_common_canvas(tmp_path, source, small_boxes):
    first, _ = cut_tiles(source, 2, 2, 64, 0.25, jitter=1, seed=6)
    second, _ = cut_tiles(source[::-1], 2, 2, 64, 0.25, jitter=3, seed=7, origin=(200, 40))
    paths = write_tiles(tmp_path / "tiles", first + second)
    options = ["--grid", "2x2", "--overlap", "0.25", "--sections", "2",
               "--voxel-size", "0.5,0.5,2", "--voxel-unit", "um"]
    assert run_stitch(tmp_path, paths, tmp_path / "m.tif", *options) == 0
    stack = tifffile.imread(tmp_path / "m.tif")
    found = xy(read_table(tmp_path / "positions.tsv"))
    sizes = [tuple(int(v) for v in np.ceil(found[k:k + 4].max(axis=0)) + 64) for k in (0, 4)]
    assert sizes[0] != sizes[1]
    url = "file://" + str(tmp_path / "vol")
    assert run_stitch(tmp_path, paths, url, *options, "--chunk-size", "16,16,1") == 0
    info = json.loads((tmp_path / "vol" / "info").read_text())
    assert info["scales"][0]["resolution"] == [500.0, 500.0, 2000.0]
    assert info["scales"][0]["size"] == [stack.shape[2], stack.shape[1], 2]
    got = read_with_tensorstore(tmp_path / "vol")[..., 0].transpose(2, 1, 0)
    np.testing.assert_array_equal(got, stack)
    for page, (w, h) in zip(got, sizes):
        assert page[:h, :w].any() and not page[h:].any() and not page[:, w:].any()
    assert json.loads((tmp_path / "vol" / "neurostation.json").read_text())["voxel_unit"] == "um"


def test_interrupted_volume_is_not_complete_and_resumes(tmp_path, source, small_boxes,
                                                        monkeypatch, capsys):
    tiles, _ = cut_tiles(source, 2, 3, 80, 0.2, jitter=3, seed=12)
    paths = write_tiles(tmp_path / "tiles", tiles)
    assert run_stitch(tmp_path, paths, tmp_path / "m.tif", "--grid", "2x3", "--overlap", "0.2") == 0
    options = ["--grid", "2x3", "--overlap", "0.2", "--chunk-size", "32,32,1"]
    original, calls = mosaic_volume.MosaicSource.read, []

    def dies_after_three(self, box):
        calls.append(box)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return original(self, box)

    monkeypatch.setattr(mosaic_volume.MosaicSource, "read", dies_after_three)
    vol = tmp_path / "vol"
    assert run_stitch(tmp_path, paths, vol, *options) == 130
    assert not (vol / "neurostation.json").exists()
    with pytest.raises(UserError, match="is incomplete"):
        open_complete(vol)
    assert main(["cutout", str(vol), "-o", str(tmp_path / "c.tif")]) == 2
    assert "is incomplete" in capsys.readouterr().err

    monkeypatch.setattr(mosaic_volume.MosaicSource, "read",
                        lambda self, box: calls.append(box) or original(self, box))
    calls.clear()
    assert run_stitch(tmp_path, paths, vol, *options) == 0
    resumed = len(calls)
    calls.clear()
    assert run_stitch(tmp_path, paths, tmp_path / "fresh", *options) == 0
    assert resumed == len(calls) - 3  # the re-run skipped the 3 boxes already written
    np.testing.assert_array_equal(read_with_tensorstore(vol)[:, :, 0, 0].T,
                                  tifffile.imread(tmp_path / "m.tif"))
    assert json.loads((vol / "neurostation.json").read_text())["complete"] is True


def _error(capsys):
    """The one error line (progress and warnings may come before it)."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1
    return err[0]


@pytest.mark.parametrize("output, message", [
    ("nosuchproto://bucket/vol", "error: unsupported volume URL scheme nosuchproto:// in "
     "nosuchproto://bucket/vol: use a folder or one of"),
    ("file:///proc/no/such/place", "error: cannot write a volume at file:///proc/no/such/place"),
])
def test_bad_output_url(tmp_path, two_tiles, capsys, output, message):
    assert run_stitch(tmp_path, two_tiles, output, "--grid", "1x2", "--overlap", "0.25") == 2
    assert _error(capsys).startswith(message)
    # refused before the registration: no positions table was written
    assert not (tmp_path / "positions.tsv").exists()


@pytest.mark.parametrize("options, message", [
    (["--chunk-size", "32,32,1"], "error: --chunk-size applies to precomputed output; "),
    (["--encoding", "jpeg"], "error: --encoding applies to precomputed output; "),
])
def test_volume_options_on_a_tiff_output(tmp_path, two_tiles, capsys, options, message):
    code = run_stitch(tmp_path, two_tiles, tmp_path / "m.tif", "--grid", "1x2", "--overlap",
                      "0.25", *options)
    assert code == 2 and _error(capsys).startswith(message)
    assert not (tmp_path / "m.tif").exists()


def test_jpeg_of_16_bit_tiles_is_refused_before_any_work(tmp_path, source, capsys):
    tiles, _ = cut_tiles(source, 1, 2, 64, 0.25, jitter=0, seed=0)
    paths = write_tiles(tmp_path / "w", [t.astype(np.uint16) for t in tiles])
    code = run_stitch(tmp_path, paths, tmp_path / "vol", "--grid", "1x2", "--overlap", "0.25",
                      "--encoding", "jpeg")
    assert code == 2 and _error(capsys).startswith(
        "error: jpeg encoding takes uint8 images with 1 or 3 channels, not uint16")
    assert not (tmp_path / "vol").exists()


def test_float64_tiles_cannot_be_a_volume(tmp_path, source, capsys):
    tiles, _ = cut_tiles(source, 1, 2, 64, 0.25, jitter=0, seed=0)
    paths = write_tiles(tmp_path / "f", [t.astype(np.float64) for t in tiles])
    code = run_stitch(tmp_path, paths, tmp_path / "vol", "--grid", "1x2", "--overlap", "0.25")
    assert code == 2
    assert _error(capsys) == ("error: input data type float64 cannot be stored; precomputed "
                              "volumes take uint8, int8, uint16, int16, uint32, int32, uint64, "
                              "float32")
    assert not (tmp_path / "vol").exists() and not (tmp_path / "positions.tsv").exists()
