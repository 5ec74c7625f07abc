"""`neurostation qc`: projections equal numpy's on volumes of many chunks, histogram counts equal
numpy.histogram, the PNG shows objects, contours, checkerboard squares and tile outlines where
they belong, and every bad input stops with one line and no output."""

import json
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from neurostation.visualize.checkerboard import checker
from neurostation.visualize.contours import COLOURS, boundaries
from neurostation.visualize.figure import HEIGHT, WIDTH, layout, nice_length
from neurostation.visualize.histogram import histogram
from neurostation.visualize.project import project
from neurostation.visualize.panels import ortho_sizes
from neurostation.visualize.sources import open_volume_source

BLOB_VOXEL_NM = (500.0, 500.0, 2000.0)


def write_ome(path, zyx, voxel_um=(0.5, 0.5, 2.0)):
    tifffile.imwrite(path, zyx, ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": voxel_um[0],
                               "PhysicalSizeY": voxel_um[1], "PhysicalSizeZ": voxel_um[2],
                               "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm",
                               "PhysicalSizeZUnit": "µm"})
    return str(path)


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    """A random 50 x 40 x 20 uint16 volume as a precomputed volume of 8 x 8 x 4 chunks (175
    chunks), with the array it holds (x, y, z)."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("chunked")
    zyx = np.random.default_rng(1).integers(0, 60000, (20, 40, 50), dtype=np.uint16)
    src = write_ome(folder / "random.ome.tif", zyx)
    out = folder / "vol"
    subprocess.run([sys.executable, "-m", "neurostation.cli", "ingest", src, "-o", str(out),
                    "--chunk-size", "8,8,4"], check=True, capture_output=True)
    return str(out), np.transpose(zyx, (2, 1, 0))


def binned(array, factors, func):
    """Reference binning with numpy: pad to whole bins, reshape, reduce (max or mean)."""
    pads = [(0, -n % f) for n, f in zip(array.shape, factors)]
    if func == "max":
        padded = np.pad(array, pads, constant_values=np.iinfo(array.dtype).min)
        shape = [s for n, f in zip(padded.shape, factors) for s in (n // f, f)]
        return padded.reshape(shape).max(axis=(1, 3))
    total = np.pad(array.astype(np.float64), pads).reshape(
        [s for n, f in zip(np.add(array.shape, [p[1] for p in pads]), factors) for s in (n // f, f)])
    count = np.pad(np.ones(array.shape), pads).reshape(total.shape)
    return total.sum(axis=(1, 3)) / count.sum(axis=(1, 3))


@pytest.mark.parametrize("jobs", [1, 2])
def test_projections_equal_numpy_over_many_chunks(chunked, tmp_path, jobs):
    url, array = chunked
    source = open_volume_source(url, str(tmp_path))
    assert source.chunk == (8, 8, 4)
    maxima = project(source, method="max", jobs=jobs)
    means = project(source, method="mean", jobs=jobs)
    for axis in (0, 1, 2):
        np.testing.assert_array_equal(maxima[axis], array.max(axis=axis))
        np.testing.assert_allclose(means[axis], array.mean(axis=axis, dtype=np.float64), rtol=1e-12)


def test_binned_projections_count_every_voxel(chunked, tmp_path):
    """With bins that do not divide the chunks, each picture pixel is the max / mean of its block."""
    url, array = chunked
    source = open_volume_source(url, str(tmp_path))
    bins = (3, 5, 7)
    maxima = project(source, method="max", bins=bins)
    means = project(source, method="mean", bins=bins)
    for axis, (a, b) in ((2, (0, 1)), (1, (0, 2)), (0, (1, 2))):
        flat_max, flat_mean = array.max(axis=axis), array.mean(axis=axis, dtype=np.float64)
        np.testing.assert_array_equal(maxima[axis], binned(flat_max, (bins[a], bins[b]), "max"))
        np.testing.assert_allclose(means[axis], binned(flat_mean, (bins[a], bins[b]), "mean"),
                                   rtol=1e-12)


def test_slice_region_is_the_plane(chunked, tmp_path):
    url, array = chunked
    source = open_volume_source(url, str(tmp_path))
    plane = project(source, (1,), "mean", region=((0, 17, 0), (50, 18, 20)))[1]
    np.testing.assert_array_equal(plane, array[:, 17, :])


def test_histogram_counts_equal_numpy(chunked, tmp_path):
    url, array = chunked
    source = open_volume_source(url, str(tmp_path))
    counts, edges, facts = histogram(source, 100, jobs=2)
    expected, expected_edges = np.histogram(array, 100, (array.min(), array.max()))
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(edges, expected_edges)
    assert facts["min"] == array.min() and facts["max"] == array.max()


def test_histogram_of_small_integers_has_a_bin_per_value(tmp_path):
    zyx = np.random.default_rng(2).integers(3, 40, (5, 30, 30), dtype=np.uint8)
    source = open_volume_source(write_ome(tmp_path / "small.ome.tif", zyx), str(tmp_path))
    counts, edges, _ = histogram(source, 256)
    np.testing.assert_array_equal(counts, np.bincount(zyx.ravel())[zyx.min():])
    np.testing.assert_allclose(edges[:2], [zyx.min() - 0.5, zyx.min() + 0.5])


def test_checker_pattern():
    a, b = np.ones((40, 20)), np.zeros((40, 20))
    board = checker(a, b, 4)  # squares of 10 pixels
    assert board[0, 0] == 1 and board[0, 10] == 0 and board[10, 0] == 0 and board[10, 10] == 1
    assert board[39, 19] == 1 and board[39, 9] == 0  # squares (3, 1) and (3, 0)


def test_boundaries_where_labels_change():
    labels = np.zeros((8, 10), np.uint16)
    labels[2:6, 2:5] = 1
    labels[2:6, 5:8] = 2
    edge = boundaries(labels)
    assert edge[2, 2] and edge[5, 4] and edge[3, 4] and edge[3, 5]  # rims and the 1|2 border
    assert not edge[3, 3] and not edge[3, 6]  # interiors
    assert not edge[0, 0] and not edge[7, 9]  # background


@pytest.mark.parametrize("target, length, label", [(0.7, 0.5, "0.5 nm"), (1999, 1000, "1 µm"),
                                                  (45000, 20000, "20 µm"), (4e6, 2e6, "2 mm")])
def test_scale_bar_length_is_round(target, length, label):
    found, text = nice_length(target)
    assert found == pytest.approx(length) and text == label


def panel_pixel(rect, shape, x, y):
    """PNG pixel (row, col) at the centre of data pixel (x = column, y = row) of a panel."""
    left, top, w, h = rect
    return int(top + (y + 0.5) * h / shape[0]), int(left + (x + 0.5) * w / shape[1])


def read_png(path):
    with Image.open(path) as png:
        assert png.size == (WIDTH, HEIGHT) and png.mode == "RGB"
        return np.asarray(png)


def blob_rects():
    """Pixel rectangles of the xy, xz, yz panels of qc_blob (24 x 20 x 6, 0.5 x 0.5 x 2 µm)."""
    rects, _ = layout(ortho_sizes((24, 20, 6), BLOB_VOXEL_NM), "ortho")
    return rects


def test_projection_shows_the_cube_with_its_contours(cli, data, tmp_path):
    out = tmp_path / "mip.png"
    proc = cli("qc", "projection", data("qc_blob.ome.tif"), "--labels", data("qc_labels.ome.tif"),
               "-o", out)
    assert proc.returncode == 0, proc.stderr
    png = read_png(out)
    xy, xz, yz = blob_rects()
    # physical aspect: x 24 x 0.5 = 12 µm, y 20 x 0.5 = 10 µm, z 6 x 2 = 12 µm
    assert xz[3] / xz[2] == pytest.approx(12 / 12, abs=0.02)
    assert yz[2] / yz[3] == pytest.approx(12 / 10, abs=0.02)
    inside, rim, background = (5, 13), (4, 13), (1, 1)  # voxel (x, y) in the xy panel
    assert (png[panel_pixel(xy, (20, 24), *inside)] == 255).all()  # the bright cube, grey
    np.testing.assert_array_equal(png[panel_pixel(xy, (20, 24), *rim)], COLOURS[1])  # label 1 rim
    assert (png[panel_pixel(xy, (20, 24), *background)] == 0).all()
    # the label-2 bar (x 14-20, y 2-6) is outlined in label 2's colour, not filled
    np.testing.assert_array_equal(png[panel_pixel(xy, (20, 24), 14, 4)], COLOURS[2])
    assert (png[panel_pixel(xy, (20, 24), 16, 4)] == 0).all()
    # xz panel: the cube spans z 1-3 at x 4-8 (rows are z)
    np.testing.assert_array_equal(png[panel_pixel(xz, (6, 24), 5, 1)], COLOURS[1])
    assert (png[panel_pixel(xz, (6, 24), 5, 4)] == 0).all()


def test_mean_projection_and_slices_place_the_cube(cli, data, tmp_path):
    out = tmp_path / "slices.png"
    proc = cli("qc", "slices", data("qc_blob.ome.tif"), "--position", "5,13,4", "-o", out)
    assert proc.returncode == 0, proc.stderr
    png = read_png(out)
    xy, xz, yz = blob_rects()
    assert (png[panel_pixel(xy, (20, 24), 5, 13)] == 0).all()  # z=4 misses the cube (z 1-3)
    assert (png[panel_pixel(xz, (6, 24), 5, 1)] == 255).all()  # the xz slice at y=13 meets it
    assert (png[panel_pixel(yz, (20, 6), 2, 13)] == 255).all()  # yz at x=5: column z, row y
    assert (png[panel_pixel(yz, (20, 6), 4, 13)] == 0).all()
    out = tmp_path / "mean.png"
    assert cli("qc", "projection", data("qc_blob.ome.tif"), "--projection", "mean",
               "-o", out).returncode == 0
    png = read_png(out)
    assert png[panel_pixel(xy, (20, 24), 5, 13)][0] > png[panel_pixel(xy, (20, 24), 1, 1)][0]


def test_checkerboard_alternates_the_two_volumes(cli, tmp_path):
    bright = write_ome(tmp_path / "bright.ome.tif", np.full((10, 40, 40), 100, np.uint8))
    dark = write_ome(tmp_path / "dark.ome.tif", np.zeros((10, 40, 40), np.uint8))
    out = tmp_path / "board.png"
    proc = cli("qc", "checkerboard", bright, dark, "--squares", "4", "-o", out)
    assert proc.returncode == 0, proc.stderr
    png = read_png(out)
    rects, _ = layout(ortho_sizes((40, 40, 10), BLOB_VOXEL_NM), "ortho")
    xy = rects[0]
    for (x, y), value in (((5, 5), 255), ((15, 5), 0), ((5, 15), 0), ((15, 15), 255), ((35, 35), 255)):
        assert (png[panel_pixel(xy, (40, 40), x, y)] == value).all(), (x, y)


def test_tiles_outlines_and_seams(cli, data, tmp_path):
    out = tmp_path / "tiles.png"
    proc = cli("qc", "tiles", data("qc_mosaic.tif"), "--positions", data("qc_positions.tsv"),
               "-o", out)
    assert proc.returncode == 0, proc.stderr
    png = read_png(out).astype(int)
    (rect,), _ = layout([(169.0, 169.0)], "row")
    shape = (169, 169)
    # inside tile 3 only (x 73-169, y 73-169): grey, untouched
    r, c = panel_pixel(rect, shape, 140, 140)
    assert png[r, c, 0] == png[r, c, 1] == png[r, c, 2]
    # the overlap of tiles 0 and 1 (x 71-96, y 2-96) is shaded yellow: blue drops
    r, c = panel_pixel(rect, shape, 83, 40)
    assert png[r, c, 0] - png[r, c, 2] > 20
    # tile 3's left edge (x = 73) is outlined in the fourth colour
    r, c = panel_pixel(rect, shape, 73, 150)
    near = png[r, c - 3:c + 4]
    assert any(abs(p - COLOURS[3]).max() < 60 for p in near)


def test_register_checkerboard_is_the_shared_one():
    from neurostation.processing import register
    from neurostation.visualize import checkerboard

    assert register.write_checkerboard is checkerboard.write_checkerboard


def test_register_style_checkerboard(tmp_path):
    from neurostation.visualize.checkerboard import REGISTER_HEIGHT, REGISTER_WIDTH, write_checkerboard

    a = np.zeros((20, 24, 16))
    a[5:15, 6:18, 4:12] = 1
    out = tmp_path / "reg.png"
    write_checkerboard(a, np.roll(a, 2, axis=0), out, (2.0, 2.0, 2.0))
    with Image.open(out) as png:
        assert png.size == (REGISTER_WIDTH, REGISTER_HEIGHT) and png.mode == "RGB"
        assert np.asarray(png).std() > 10


def _info(tmp_path, info):
    """A folder whose info file holds `info` (JSON, but not a volume's)."""
    folder = tmp_path / "vol"
    folder.mkdir()
    (folder / "info").write_text(json.dumps(info))
    return folder


BAD = {
    "info missing": (lambda d, t: ["projection", str(t)],
                     "is a folder without a Neuroglancer precomputed 'info' file"),
    "info malformed": (lambda d, t: ["projection", d("broken_info_vol")],
                       "broken_info_vol is malformed: not JSON"),
    "unreachable URL": (lambda d, t: ["histogram", d("unreachable_ref.json")],
                        "cannot reach volume http://127.0.0.1:9/volume"),
    "info not a volume's": (lambda d, t: ["slices", str(_info(t, {"type": "image"}))],
                            "is malformed: data_type or num_channels missing"),
    "voxel sizes differ": (lambda d, t: ["checkerboard", d("qc_blob.ome.tif"),
                                         d("qc_blob_coarse.ome.tif")],
                           "voxel sizes differ: qc_blob.ome.tif has 0.5 x 0.5 x 2 µm, "
                           "qc_blob_coarse.ome.tif has 1 x 1 x 2 µm"),
    "shapes differ": (lambda d, t: ["checkerboard", d("qc_blob.ome.tif"), d("stack.ome.tif")],
                      "stack.ome.tif is 20x16x4 voxels but qc_blob.ome.tif is 24x20x6"),
    "position outside": (lambda d, t: ["slices", d("qc_blob.ome.tif"), "--position", "30,1,1"],
                         "--position 30,1,1 is outside the volume, which spans voxels 0 to 23,19,5"),
    "position not numbers": (lambda d, t: ["checkerboard", d("qc_blob.ome.tif"),
                                           d("qc_blob.ome.tif"), "--position", "a,b,c"],
                             "--position must be three integers x,y,z"),
    "labels on another grid": (lambda d, t: ["projection", d("stack.ome.tif"), "--labels",
                                             d("qc_labels.ome.tif")],
                               "the image and its labels must be on the same grid"),
    "float labels": (lambda d, t: ["slices", d("qc_blob.ome.tif"), "--labels",
                                   write_ome(t / "float.ome.tif", np.ones((6, 20, 24), np.float32))],
                     "a label volume holds integers"),
    "positions of another mosaic": (lambda d, t: ["tiles", d("stack.ome.tif"), "--positions",
                                                  d("qc_positions.tsv")],
                                    "the tiles do not fit in the 20x16 mosaic"),
    "one volume for a checkerboard": (lambda d, t: ["checkerboard", d("qc_blob.ome.tif")],
                                      "qc checkerboard takes 2 input volume(s), got 1"),
    "not an image": (lambda d, t: ["projection", d("not_an_image.txt")],
                     "not_an_image.txt is not a TIFF, NIfTI-1 or Neuroglancer precomputed volume"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_and_no_output(case, cli, data, tmp_path):
    args, message = BAD[case]
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.png"
    proc = cli("qc", *args(data, empty), "-o", out)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not [f for f in os.listdir(tmp_path) if f.startswith("out")]  # no PNG, no .part


def test_incomplete_volume_is_refused(chunked, cli, tmp_path):
    import shutil

    url, _ = chunked
    copy = tmp_path / "copy"
    shutil.copytree(url, copy)
    os.remove(copy / "neurostation.json")
    proc = cli("qc", "projection", copy, "-o", tmp_path / "out.png")
    assert proc.returncode == 2 and "is incomplete" in proc.stderr
    assert not os.path.exists(tmp_path / "out.png")


def test_two_gzipped_niftis_keep_their_own_voxels(data, tmp_path):
    """Each input is unpacked in its own folder: the second NIfTI does not replace the first."""
    import nibabel as nib

    from neurostation.chunks.boxes import Box

    names = ("register_moving.nii.gz", "register_atlas.nii.gz")
    sources = [open_volume_source(data(n), str(tmp_path)) for n in names]
    for name, source in zip(names, sources):
        np.testing.assert_array_equal(source.read(Box((0, 0, 0), source.shape))[..., 0],
                                      np.asanyarray(nib.load(data(name)).dataobj))


def test_coarser_scale_of_a_pyramid(chunked, tmp_path):
    """--mip reads scale 1 (x and y halved): its projections equal numpy's on that scale."""
    from cloudvolume import CloudVolume

    url, _ = chunked
    source = open_volume_source(url, str(tmp_path), mip=1)
    coarse = np.asarray(CloudVolume("file://" + os.path.abspath(url), mip=1)[:, :, :])[..., 0]
    assert source.shape == coarse.shape == (25, 20, 20)
    assert source.voxel_nm == (1000.0, 1000.0, 2000.0)
    np.testing.assert_array_equal(project(source, (2,), "max")[2], coarse.max(axis=2))


def test_mip_is_refused_for_files(cli, data, tmp_path):
    proc = cli("qc", "projection", data("qc_blob.ome.tif"), "--mip", "1", "-o", tmp_path / "o.png")
    assert proc.returncode == 2
    assert "error: --mip applies to precomputed volumes; qc_blob.ome.tif is a tiff file" in proc.stderr


def test_boxes_stay_small_for_huge_planes():
    from neurostation.visualize.project import BOX_VOXELS, box_size

    size = box_size((60000, 50000, 1), (60000, 50000, 300))  # one TIFF plane of 3 G voxels
    assert np.prod(size) <= BOX_VOXELS and size[0] == 60000 and size[2] == 1
    assert box_size((64, 64, 64), (1000, 1000, 1000)) == (64, 128, 1000)  # z first, whole chunks


def test_a_2d_tiff_keeps_its_pixel_size(tmp_path):
    """A single plane has no z spacing: its pixel size still gives the scale bar."""
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.zeros((30, 40), np.uint8), resolution=(1e4 / 0.5, 1e4 / 0.5),
                     resolutionunit="CENTIMETER", metadata={"axes": "YX"})
    assert open_volume_source(str(path), str(tmp_path)).voxel_nm == pytest.approx((500, 500, 500))
    stack = write_ome(tmp_path / "stack.ome.tif", np.zeros((3, 30, 40), np.uint8))
    assert open_volume_source(stack, str(tmp_path)).voxel_nm == BLOB_VOXEL_NM
