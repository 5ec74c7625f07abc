"""`neurostation stitch`: tiles cut from a real image at known subpixel offsets come back to
within half a pixel; blank tiles fall back to nominal; orders, names, sections; bad inputs."""

import csv
import os

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage import color, data

from neurostation.cli import main
from neurostation.ingest import mosaic


@pytest.fixture(scope="module")
def source():
    """A real photograph (scikit-image's astronaut, grey, 0..255), shipped with the library."""
    return color.rgb2gray(data.astronaut()) * 255


def cut_tiles(image, rows, cols, size, overlap, jitter, seed, origin=(8, 8)):
    """Tiles of a grid cut at nominal steps plus a random subpixel offset each (uint8), and
    the true (x, y) of every tile's top-left in the image, in row-major order."""
    rng = np.random.default_rng(seed)
    step = size * (1 - overlap)
    tiles, truth = [], []
    for r in range(rows):
        for c in range(cols):
            nominal = np.array(origin) + jitter + (c * step, r * step)
            x, y = nominal + rng.uniform(-jitter, jitter, 2)
            ix, iy = int(x), int(y)
            patch = image[iy:iy + size + 4, ix:ix + size + 4]
            tile = ndimage.shift(patch, (iy - y, ix - x), order=3, mode="nearest")[:size, :size]
            tiles.append(np.clip(np.rint(tile), 0, 255).astype(np.uint8))
            truth.append((x, y))
    return tiles, np.array(truth)


def write_tiles(folder, tiles, names=None, **kwargs):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, tile in enumerate(tiles):
        paths.append(os.path.join(folder, names[i] if names else f"tile_{i + 1}.tif"))
        tifffile.imwrite(paths[-1], tile, **kwargs)
    return paths


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def xy(rows):
    return np.array([[float(r["x"]), float(r["y"])] for r in rows])


def rms_error(found, truth):
    """RMS distance between positions after removing the global translation."""
    error = (found - found.mean(axis=0)) - (truth - truth.mean(axis=0))
    return float(np.sqrt((error ** 2).sum(axis=1).mean()))


def assert_matches_source(picture, found, truth, source, border=16):
    """The mosaic's interior equals the source image where the tiles were cut from it."""
    corner = (truth - found).mean(axis=0)  # source (x, y) of mosaic pixel (0, 0)
    yy, xx = np.mgrid[border:picture.shape[0] - border, border:picture.shape[1] - border]
    expected = ndimage.map_coordinates(source, [yy + corner[1], xx + corner[0]], order=3)
    assert np.abs(picture[border:-border, border:-border] - expected).mean() < 0.01 * 255


def stitch(tmp_path, paths, *options):
    """Run the command in-process; returns (exit code, positions rows, edge rows)."""
    code = main(["stitch", *map(str, paths), "-o", str(tmp_path / "mosaic.tif"),
                 "--positions", str(tmp_path / "positions.tsv"),
                 "--edges", str(tmp_path / "edges.tsv"), *map(str, options)])
    if code:
        return code, None, None
    return code, read_table(tmp_path / "positions.tsv"), read_table(tmp_path / "edges.tsv")


def test_recovers_known_offsets_through_the_cli(tmp_path, cli, source):
    tiles, truth = cut_tiles(source, 3, 3, 128, 0.2, jitter=5, seed=1)
    paths = write_tiles(tmp_path / "tiles", tiles, resolution=(2e4, 2e4),
                        resolutionunit="CENTIMETER")  # 0.5 um pixels
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, GALAXY_SLOTS="2")
    result = cli("stitch", *paths, "--grid", "3x3", "--overlap", "0.2", "-o", out / "m.tif",
                 "--positions", out / "p.tsv", "--edges", out / "e.tsv", env=env)
    assert result.returncode == 0, result.stderr
    assert "progress: 100% registering tile pairs" in result.stderr
    assert "12 of 12 tile pairs accepted" in result.stderr

    assert (out / "p.tsv").read_text().splitlines()[0] == "tile\trow\tcol\tx\ty"
    assert (out / "e.tsv").read_text().splitlines()[0] == "tile_a\ttile_b\tdx\tdy\tscore\taccepted"
    positions, edges = read_table(out / "p.tsv"), read_table(out / "e.tsv")
    assert [(int(r["row"]), int(r["col"])) for r in positions] == [(r, c) for r in range(3)
                                                                   for c in range(3)]
    found = xy(positions)
    assert found.min(axis=0).tolist() == [0.0, 0.0]
    assert rms_error(found, truth) <= 0.5
    assert all(e["accepted"] == "yes" and float(e["score"]) > 0.9 for e in edges)
    first = next(e for e in edges if (e["tile_a"], e["tile_b"]) == ("tile_1.tif", "tile_2.tif"))
    assert abs(float(first["dx"]) - (truth[1, 0] - truth[0, 0])) < 0.5
    assert abs(float(first["dy"]) - (truth[1, 1] - truth[0, 1])) < 0.5

    with tifffile.TiffFile(out / "m.tif") as tif:
        assert tif.series[0].axes == "YX"
        picture = tif.asarray()
        x_res, y_res = (n / d for n, d in (tif.pages[0].tags[t].value
                                          for t in ("XResolution", "YResolution")))
    assert picture.dtype == np.uint8
    assert picture.shape[::-1] == tuple(int(v) for v in np.ceil(found.max(axis=0)) + 128)
    assert (x_res, y_res) == pytest.approx((2e4, 2e4))  # the tiles' 0.5 um kept
    assert_matches_source(picture, found, truth, source)

    # One process or two, the same answer.
    code, again, _ = stitch(tmp_path, paths, "--grid", "3x3", "--overlap", "0.2", "--jobs", "1")
    assert code == 0 and np.allclose(xy(again), found)


def test_blank_tile_falls_back_to_nominal(tmp_path, source, capsys):
    tiles, truth = cut_tiles(source, 3, 3, 96, 0.25, jitter=4, seed=2)
    tiles[4][:] = 0  # the centre tile is empty
    code, positions, edges = stitch(tmp_path, write_tiles(tmp_path, tiles),
                                    "--grid", "3x3", "--overlap", "0.25")
    assert code == 0
    centre_edges = [e for e in edges if "tile_5.tif" in (e["tile_a"], e["tile_b"])]
    assert len(centre_edges) == 4 and all(e["accepted"] == "no" for e in centre_edges)
    assert all(e["accepted"] == "yes" for e in edges if e not in centre_edges)
    found = xy(positions)
    # The centre sits at its nominal offset from its four neighbours (their mean) ...
    step = 96 * 0.75
    nominal = np.mean([found[1] + (0, step), found[7] - (0, step),
                       found[3] + (step, 0), found[5] - (step, 0)], axis=0)
    assert np.allclose(found[4], nominal, atol=0.01)
    # ... and the other tiles are still registered.
    others = [i for i in range(9) if i != 4]
    assert rms_error(found[others], truth[others]) <= 0.5
    stderr = capsys.readouterr().err
    assert "warning: 4 of 12 tile pairs rejected (blank overlap)" in stderr
    assert "warning: no reliable pair for tile_5.tif; placed at nominal offsets" in stderr


def test_snake_order(tmp_path, source):
    tiles, truth = cut_tiles(source, 2, 3, 96, 0.2, jitter=4, seed=3)
    acquired = [0, 1, 2, 5, 4, 3]  # second row scanned right to left
    paths = write_tiles(tmp_path, [tiles[i] for i in acquired])
    code, positions, _ = stitch(tmp_path, paths, "--grid", "2x3", "--overlap", "0.2",
                                "--order", "snake")
    assert code == 0
    assert [(r["tile"], r["row"], r["col"]) for r in positions][3:] == [
        ("tile_4.tif", "1", "2"), ("tile_5.tif", "1", "1"), ("tile_6.tif", "1", "0")]
    assert rms_error(xy(positions), truth[acquired]) <= 0.5


def test_names_sort_naturally(tmp_path, source):
    tiles, truth = cut_tiles(source, 2, 5, 64, 0.3, jitter=3, seed=4)
    names = [f"tile_{i + 1}" for i in range(10)]
    shuffled = np.random.default_rng(0).permutation(10)
    # Galaxy-like file names that say nothing about the order; the names do.
    paths = write_tiles(tmp_path / "in", [tiles[i] for i in shuffled],
                        names=[f"dataset_{k}.dat" for k in range(10)])
    code, positions, _ = stitch(tmp_path, paths, "--names", *[names[i] for i in shuffled],
                                "--grid", "2x5", "--overlap", "0.3")
    assert code == 0
    assert [r["tile"] for r in positions] == names  # tile_2 before tile_10
    assert rms_error(xy(positions), truth) <= 0.5


def test_stage_positions_override_the_grid(tmp_path, source):
    tiles, truth = cut_tiles(source, 2, 2, 96, 0.35, jitter=3, seed=5)
    paths = write_tiles(tmp_path, tiles)
    stage = tmp_path / "stage.tsv"
    rows = [f"tile_{i + 1}.tif\t{x + 2:.1f}\t{y - 1:.1f}"
            for i, (x, y) in enumerate(np.rint(truth))]
    stage.write_text("tile\tx\ty\n" + "\n".join(rows) + "\n")
    # --overlap 0.1 is far off; the stage positions say where the tiles really are.
    code, positions, edges = stitch(tmp_path, paths, "--grid", "2x2", "--overlap", "0.1",
                                    "--stage-positions", stage)
    assert code == 0 and all(e["accepted"] == "yes" for e in edges)
    assert rms_error(xy(positions), truth) <= 0.5


def test_serial_sections_of_different_sizes(tmp_path, source):
    first, truth_a = cut_tiles(source, 2, 2, 64, 0.25, jitter=1, seed=6)
    second, truth_b = cut_tiles(source[::-1], 2, 2, 64, 0.25, jitter=3, seed=7, origin=(200, 40))
    paths = write_tiles(tmp_path, first + second)
    code, positions, edges = stitch(tmp_path, paths, "--grid", "2x2", "--overlap", "0.25",
                                    "--sections", "2", "--voxel-size", "0.5,0.5,2",
                                    "--voxel-unit", "um")
    assert code == 0
    assert list(positions[0]) == ["section", "tile", "row", "col", "x", "y"]
    assert list(edges[0])[:3] == ["section", "tile_a", "tile_b"]
    assert [r["section"] for r in positions] == ["0"] * 4 + ["1"] * 4
    found = xy(positions)
    assert rms_error(found[:4], truth_a) <= 0.5 and rms_error(found[4:], truth_b) <= 0.5
    sizes = [tuple(int(v) for v in np.ceil(found[k:k + 4].max(axis=0)) + 64) for k in (0, 4)]
    assert sizes[0] != sizes[1]  # the sections come out with different sizes
    with tifffile.TiffFile(tmp_path / "mosaic.tif") as tif:
        assert tif.series[0].axes == "ZYX"
        stack = tif.asarray()
        assert tif.pages[0].tags["XResolution"].value == (20000, 1)  # 0.5 um per pixel
        assert tif.shaped_metadata[0]["voxel_size"] == [0.5, 0.5, 2.0]
    width, height = max(s[0] for s in sizes), max(s[1] for s in sizes)
    assert stack.shape == (2, height, width) and stack.dtype == np.uint8
    for page, (w, h), k, image, truth in zip(stack, sizes, (0, 4), (source, source[::-1]),
                                             (truth_a, truth_b)):
        assert_matches_source(page[:h, :w], found[k:k + 4], truth, image, border=8)
        assert not page[h:].any() and not page[:, w:].any()  # top-left aligned, zero padding


@pytest.mark.parametrize("dtype", ["uint16", "int16", "float32"])
def test_data_type_is_kept(tmp_path, source, dtype):
    tiles, truth = cut_tiles(source, 2, 2, 64, 0.3, jitter=2, seed=8)
    scale = {"uint16": 200, "int16": -100, "float32": 1 / 255}[dtype]
    tiles = [(t.astype(np.float64) * scale).astype(dtype) for t in tiles]
    code, positions, _ = stitch(tmp_path, write_tiles(tmp_path / "in", tiles),
                                "--grid", "2x2", "--overlap", "0.3")
    assert code == 0 and rms_error(xy(positions), truth) <= 0.5
    picture = tifffile.imread(tmp_path / "mosaic.tif")
    assert picture.dtype == np.dtype(dtype)
    assert_matches_source(picture / scale, xy(positions), truth, source, border=8)


def test_all_pairs_rejected_gives_the_nominal_grid(tmp_path, source, capsys):
    tiles, _ = cut_tiles(source, 2, 2, 64, 0.25, jitter=3, seed=9)
    code, positions, edges = stitch(tmp_path, write_tiles(tmp_path, tiles), "--grid", "2x2",
                                    "--overlap", "0.25", "--min-score", "1")
    assert code == 0 and all(e["accepted"] == "no" for e in edges)
    assert xy(positions).tolist() == [[0, 0], [48, 0], [0, 48], [48, 48]]
    assert "placed at nominal offsets" in capsys.readouterr().err


def test_shift_beyond_max_shift_is_rejected(tmp_path, source, capsys):
    tiles, _ = cut_tiles(source, 1, 2, 64, 0.3, jitter=0, seed=0)
    moved = np.zeros_like(tiles[1])
    moved[:, 5:] = tiles[1][:, :-5]  # 5 px further right than nominal
    code, _, edges = stitch(tmp_path, write_tiles(tmp_path, [tiles[0], moved]), "--grid", "1x2",
                            "--overlap", "0.3", "--max-shift", "3")
    assert code == 0 and edges[0]["accepted"] == "no"
    assert "(best match at the search limit)" in capsys.readouterr().err


def test_single_tile(tmp_path, source):
    tile = cut_tiles(source, 1, 1, 64, 0.2, jitter=0, seed=0)[0][0]
    code, positions, edges = stitch(tmp_path, write_tiles(tmp_path, [tile]), "--grid", "1x1",
                                    "--overlap", "0.2")
    assert code == 0 and xy(positions).tolist() == [[0, 0]] and edges == []
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mosaic.tif"), tile)


def test_ncc_map_finds_a_cut_out_template(source):
    search = source[100:160, 200:290]
    found = mosaic.ncc_map(search, search[5:25, 7:40])
    assert found.shape == (41, 58)
    assert np.unravel_index(found.argmax(), found.shape) == (5, 7)
    assert found.max() == pytest.approx(1.0) and found.min() >= -1 - 1e-9


def test_solve_keeps_a_component_without_edges_at_nominal_offsets():
    nominal = np.array([[0, 0], [90, 0], [180, 0]], float)
    edges = [mosaic.Edge(0, 1, nominal[1] - nominal[0], np.array([93.0, 2.0]), score=0.9,
                         accepted=True),
             mosaic.Edge(1, 2, nominal[2] - nominal[1], np.array([0.0, 0.0]), reason="blank")]
    found = mosaic.solve_positions(3, edges, nominal)
    assert np.allclose(found, [[0, 0], [93, 2], [183, 2]], atol=0.01)


def test_snake_grid_cells():
    assert [mosaic.grid_cell(i, 3, "snake") for i in range(6)] == [
        (0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)]


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


@pytest.fixture
def two_tiles(tmp_path, source):
    tiles, _ = cut_tiles(source, 1, 2, 64, 0.25, jitter=0, seed=0)
    return write_tiles(tmp_path / "ok", tiles)


@pytest.mark.parametrize("options, message", [
    (["--grid", "1x3", "--overlap", "0.2"],
     "got 2 tiles but --grid 1x3 with 1 section(s) needs 3"),
    (["--grid", "1x1", "--overlap", "0.2", "--sections", "3"],
     "got 2 tiles but --grid 1x1 with 3 section(s) needs 3"),
    (["--grid", "1by2", "--overlap", "0.2"],
     "--grid must be ROWSxCOLS with positive whole numbers (e.g. 3x4), got '1by2'"),
    (["--grid", "0x2", "--overlap", "0.2"],
     "--grid must be ROWSxCOLS with positive whole numbers (e.g. 3x4), got '0x2'"),
    (["--grid", "1x2", "--overlap", "0.6"],
     "--overlap must be a fraction in (0, 0.5], e.g. 0.1 for 10%; got 0.6"),
    (["--grid", "1x2", "--overlap", "0"],
     "--overlap must be a fraction in (0, 0.5], e.g. 0.1 for 10%; got 0"),
    (["--grid", "1x2", "--overlap", "20"],
     "--overlap must be a fraction in (0, 0.5], e.g. 0.1 for 10%; got 20"),
    (["--grid", "1x2", "--overlap", "0.2", "--names", "a"],
     "--names gives 1 names for 2 tiles; give one name per tile, in the same order"),
    (["--grid", "1x2", "--overlap", "0.2", "--names", "a", "a"],
     "--names has 'a' more than once; every tile needs its own name"),
    (["--grid", "1x2", "--overlap", "0.2", "--voxel-size", "1"],
     "--voxel-size must be X,Y or X,Y,Z (e.g. 0.65,0.65), got '1'"),
])
def test_bad_options(tmp_path, two_tiles, capsys, options, message):
    assert stitch(tmp_path, two_tiles, *options)[0] == 2
    assert _one_line_error(capsys) == "error: " + message


@pytest.mark.parametrize("table, message", [
    ("tile\tx\ty\ntile_1.tif\t0\t0\n", "has no row for tile tile_2.tif"),
    ("name\tx\ty\ntile_1.tif\t0\t0\n",
     "needs a tab-separated header with columns tile, x, y; got name, x, y"),
    ("tile\tx\ty\ntile_1.tif\t0\tfar\n", "row 2: x and y must be numbers, got '0', 'far'"),
])
def test_bad_stage_positions(tmp_path, two_tiles, capsys, table, message):
    stage = tmp_path / "stage.tsv"
    stage.write_text(table)
    assert stitch(tmp_path, two_tiles, "--grid", "1x2", "--overlap", "0.2",
                  "--stage-positions", stage)[0] == 2
    assert _one_line_error(capsys) == "error: --stage-positions stage.tsv " + message


def test_tiles_of_different_shapes_or_types(tmp_path, two_tiles, capsys):
    odd = tmp_path / "tile_3.tif"
    tifffile.imwrite(odd, np.zeros((64, 60), np.uint8))
    assert stitch(tmp_path, [*two_tiles, odd], "--grid", "1x3", "--overlap", "0.2")[0] == 2
    assert _one_line_error(capsys) == (
        "error: tiles differ in size: tile_1.tif is 64 x 64 px but tile_3.tif is 60 x 64 px "
        "(width x height); all tiles must be the same size")
    tifffile.imwrite(odd, np.zeros((64, 64), np.uint16))
    assert stitch(tmp_path, [*two_tiles, odd], "--grid", "1x3", "--overlap", "0.2")[0] == 2
    assert _one_line_error(capsys) == (
        "error: tiles differ in data type: tile_1.tif is uint8 but tile_3.tif is uint16; "
        "convert them to one type first")


def test_non_image_truncated_and_3d_tiles(tmp_path, two_tiles, capsys, data):
    def error(path):
        assert stitch(tmp_path, [two_tiles[0], path], "--grid", "1x2", "--overlap", "0.2")[0] == 2
        return _one_line_error(capsys)

    assert error(data("not_an_image.txt")) == (
        "error: not_an_image.txt is not a TIFF, NIfTI-1 or Neuroglancer precomputed volume "
        "(it starts with b'x\\ty\\n1\\t2\\n')")
    assert error(data("truncated.tif")).startswith("error: TIFF truncated.tif is truncated")
    # Galaxy's element identifier leads when the file is called otherwise.
    assert stitch(tmp_path, [two_tiles[0], data("truncated.tif")], "--names", "t1", "t2",
                  "--grid", "1x2", "--overlap", "0.2")[0] == 2
    assert _one_line_error(capsys).startswith("error: tile t2: TIFF truncated.tif is truncated")
    assert error(data("stack.ome.tif")) == (
        "error: tile stack.ome.tif has axes ZYX and shape (4, 16, 20); stitch takes "
        "single-plane 2D tiles, one file per tile")
    assert error(data("anatomical.nii")) == (
        "error: anatomical.nii is a NIfTI file; stitch takes 2D TIFF tiles")
