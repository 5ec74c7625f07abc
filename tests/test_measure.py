"""`neurostation measure`: per-object measurements equal scikit-image's regionprops (to the 12
significant digits of the table) on a volume read in many small boxes (serial and with a
process pool); the known objects of the test data give their exact numbers; collections get a
sample column and a summary; bad input stops with one line and no output."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from label_synth import VOXEL_UM, partition, small_boxes, write_ome  # noqa: F401
from scipy import ndimage
from skimage.measure import marching_cubes, mesh_surface_area, regionprops

from neurostation.analysis.objects.meshing import surface_areas
from neurostation.cli import main

@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """A 19 x 23 x 13 (x, y, z) partition into 40 objects with an intensity image, as OME-TIFFs."""
    folder = tmp_path_factory.mktemp("measure")
    labels = partition((13, 23, 19), 40)
    values = np.random.default_rng(2).integers(0, 4000, labels.shape).astype(np.uint16)
    return (write_ome(folder / "labels.ome.tif", labels), write_ome(folder / "values.ome.tif", values),
            labels, values)


@pytest.mark.parametrize("jobs", [1, 2])
def test_equals_regionprops(volume, small_boxes, tmp_path, jobs):  # noqa: F811
    labels_path, values_path, labels, values = volume
    out = tmp_path / "objects.tsv"
    assert main([
        "measure", labels_path, "--intensity", values_path, "-o", str(out), "--jobs", str(jobs)]) == 0
    table = pd.read_csv(out, sep="\t")
    spacing = VOXEL_UM[::-1]  # z, y, x for the (z, y, x) arrays
    props = regionprops(labels, values, spacing=spacing)
    assert list(table["label"]) == [p.label for p in props]
    assert len(props) > 30
    assert (table["sample"] == "labels.ome.tif").all()
    for row, p in zip(table.itertuples(), props):
        assert row.voxel_count == p.num_pixels
        assert row.volume_um3 == pytest.approx(p.area, rel=1e-10)
        voxel_centroid = np.argwhere(labels == p.label).mean(axis=0)[::-1]
        np.testing.assert_allclose([row.centroid_x, row.centroid_y, row.centroid_z],
                                   voxel_centroid, rtol=1e-10)
        np.testing.assert_allclose([row.centroid_x_um, row.centroid_y_um, row.centroid_z_um],
                                   p.centroid[::-1], rtol=1e-10)
        z0, y0, x0, z1, y1, x1 = p.bbox
        assert (row.bbox_x0, row.bbox_y0, row.bbox_z0, row.bbox_x1, row.bbox_y1, row.bbox_z1) == (
            x0, y0, z0, x1, y1, z1)
        assert row.equivalent_diameter_um == pytest.approx(p.equivalent_diameter_area, rel=1e-10)
        assert row.axis_major_um == pytest.approx(p.axis_major_length, rel=1e-10, abs=1e-9)
        assert row.axis_minor_um == pytest.approx(p.axis_minor_length, rel=1e-10, abs=1e-9)
        assert row.axis_minor_um <= row.axis_middle_um <= row.axis_major_um
        # surface area: scikit-image's marching cubes of the object in memory (box padded by 1)
        inside = np.pad(labels[p.slice] == p.label, 1).astype(np.float32)
        vertices, faces, _, _ = marching_cubes(inside, 0.5, spacing=spacing)
        area = mesh_surface_area(vertices, faces)
        assert row.surface_area_um2 == pytest.approx(area, rel=1e-10)
        assert row.sphericity == pytest.approx(
            np.pi ** (1 / 3) * (6 * p.area) ** (2 / 3) / area, rel=1e-10)
        assert row.intensity_mean == pytest.approx(p.intensity_mean, rel=1e-10)
        assert row.intensity_min == p.intensity_min
        assert row.intensity_max == p.intensity_max
        assert row.intensity_std == pytest.approx(p.intensity_std, rel=1e-10)
        assert row.intensity_integrated == pytest.approx(
            ndimage.sum(values, labels, p.label), rel=1e-10)


def test_known_objects(data, cli, tmp_path):
    out, summary = tmp_path / "objects.tsv", tmp_path / "summary.tsv"
    result = cli("measure", data("objects_labels.ome.tif"), "--intensity",
                 data("objects_intensity.ome.tif"), "-o", out, "--summary", summary)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, sep="\t").set_index("label")
    assert list(table.index) == [1, 2, 3, 7]
    assert list(table["voxel_count"]) == [24, 18, 144, 12]
    assert list(table["volume_um3"]) == [12.0, 9.0, 72.0, 6.0]  # voxels of 0.5 µm³
    one = table.loc[1]
    assert (one.centroid_x, one.centroid_y, one.centroid_z) == (3.5, 3.0, 1.5)
    assert (one.centroid_x_um, one.centroid_y_um, one.centroid_z_um) == (1.75, 1.5, 3.0)
    assert [one[f"bbox_{a}"] for a in ("x0", "y0", "z0", "x1", "y1", "z1")] == [2, 2, 1, 6, 5, 3]
    # intensity x + 2y + 10z: mean 3.5 + 6 + 15, min 2 + 4 + 10, max 5 + 8 + 20
    assert (one.intensity_mean, one.intensity_min, one.intensity_max) == (24.5, 16, 33)
    assert one.intensity_integrated == 24.5 * 24
    assert one.equivalent_diameter_um == pytest.approx((6 * 12 / np.pi) ** (1 / 3))
    # marching cubes on its 4 x 3 x 2 voxels (0.5 x 0.5 x 2 µm): flat faces 13, edge chamfers
    # 4 (1.5 + 1) hypot(0.5, 2) / 2 + 4 * 2 hypot(0.5, 0.5) / 2, 8 corner triangles of 0.1795
    chamfers = 4 * 2.5 * np.hypot(0.5, 2) / 2 + 4 * 2 * np.hypot(0.5, 0.5) / 2
    corners = 8 * 0.5 * np.linalg.norm(np.cross((-0.25, 0.25, 0), (-0.25, 0, 1)))
    assert one.surface_area_um2 == pytest.approx(13 + chamfers + corners, rel=1e-10)
    assert one.sphericity == pytest.approx(np.cbrt(np.pi) * np.cbrt(6 * 12) ** 2
                                           / one.surface_area_um2, rel=1e-10)
    sums = pd.read_csv(summary, sep="\t")
    assert sums.to_dict("records") == [{
        "sample": "objects_labels.ome.tif", "objects": 4, "total_volume_um3": 99.0,
        "mean_volume_um3": 24.75, "median_volume_um3": 10.5, "min_volume_um3": 6.0,
        "max_volume_um3": 72.0,
        "mean_equivalent_diameter_um": pytest.approx(table["equivalent_diameter_um"].mean()),
        "mean_intensity": pytest.approx(table["intensity_mean"].mean())}]


def test_precomputed_labels(data, small_boxes, tmp_path):  # noqa: F811
    """labels_vol: segments 1, 2, 3 of 6 x 12 x 4 voxels of 0.25 x 0.25 x 1 µm, in chunks."""
    out = tmp_path / "objects.tsv"
    assert main(["measure", data("labels_vol"), "-o", str(out), "--unit", "nm"]) == 0
    table = pd.read_csv(out, sep="\t")
    assert list(table["label"]) == [1, 2, 3]
    assert list(table["voxel_count"]) == [288] * 3
    assert list(table["volume_nm3"]) == [288 * 250 * 250 * 1000] * 3
    assert list(table["centroid_x"]) == [3.5, 9.5, 15.5]
    assert list(table["bbox_x1"]) == [7, 13, 19]


def test_collection_in_natural_order(data, cli, tmp_path):
    out, summary = tmp_path / "objects.tsv", tmp_path / "summary.tsv"
    result = cli("measure", data("objects_labels.ome.tif"), data("objects_labels_b.ome.tif"),
                 data("objects_empty.ome.tif"), "--names", "cell_10", "cell_2", "cell_3",
                 "-o", out, "--summary", summary)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, sep="\t")
    assert list(table["sample"]) == ["cell_2", "cell_2", "cell_10", "cell_10", "cell_10", "cell_10"]
    assert list(table["label"]) == [3, 7, 1, 2, 3, 7]
    sums = pd.read_csv(summary, sep="\t")
    assert list(sums["sample"]) == ["cell_2", "cell_3", "cell_10"]
    assert list(sums["objects"]) == [2, 0, 4]
    assert list(sums["total_volume_um3"]) == [78.0, 0.0, 99.0]
    assert sums["median_volume_um3"].tolist()[0] == 39.0
    assert np.isnan(sums["mean_volume_um3"][1])


def test_empty_volume_gives_a_header_only_table(data, cli, tmp_path):
    out = tmp_path / "objects.tsv"
    result = cli("measure", data("objects_empty.ome.tif"), "-o", out)
    assert result.returncode == 0, result.stderr
    assert "no voxel is labelled" in result.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sample\tlabel\tvoxel_count\tvolume_um3\t")


def test_voxel_size_option(tmp_path, cli):
    """A TIFF without voxel size is refused unless --voxel-size gives one."""
    path = tmp_path / "plain.tif"
    labels = np.zeros((3, 4, 5), np.uint8)
    labels[1, 1:3, 1:4] = 5
    tifffile.imwrite(path, labels, photometric="minisblack", metadata={"axes": "ZYX"})
    out = tmp_path / "objects.tsv"
    result = cli("measure", path, "-o", out)
    assert result.returncode == 2 and "records no voxel size" in result.stderr
    assert not out.exists()
    result = cli("measure", path, "-o", out, "--voxel-size", "2,2,5", "--unit", "nm")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out, sep="\t")["volume_nm3"].tolist() == [6 * 20.0]


@pytest.mark.parametrize("inputs_, message", [
    (["@objects_float.ome.tif"], "holds float32 values; a label volume holds integers"),
    (["@objects_labels.ome.tif", "--intensity", "@stack.ome.tif"],
     "is 20x16x4 voxels but the label image objects_labels.ome.tif is 24x20x6"),
    (["@broken_info_vol"], "broken_info_vol"),
    (["@objects_labels.ome.tif", "@objects_labels_b.ome.tif", "--names", "a"], "--names gives 1"),
])
def test_bad_input(data, cli, tmp_path, inputs_, message):
    out, summary = tmp_path / "objects.tsv", tmp_path / "summary.tsv"
    args = [data(a[1:]) if a.startswith("@") else a for a in inputs_]
    result = cli("measure", *args, "-o", out, "--summary", summary)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_collection_intensity_matched_by_name(data, cli, tmp_path):
    """With several inputs each label volume takes the intensity image of its own name,
    whatever the order they are given in; a name without an image is refused."""
    out = tmp_path / "objects.tsv"
    blank = tmp_path / "blank.ome.tif"
    write_ome(blank, np.zeros((6, 20, 24), np.uint16), (0.5, 0.5, 2.0))
    result = cli("measure", data("objects_labels.ome.tif"), data("objects_labels_b.ome.tif"),
                 "--names", "a", "b", "--intensity", blank, data("objects_intensity.ome.tif"),
                 "--intensity-names", "b", "a", "-o", out)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, sep="\t")
    assert table.loc[table["sample"] == "a", "intensity_mean"].tolist() == [24.5, 28, 56.5, 87.5]
    assert table.loc[table["sample"] == "b", "intensity_max"].tolist() == [0, 0]
    result = cli("measure", data("objects_labels.ome.tif"), data("objects_labels_b.ome.tif"),
                 "--names", "a", "b", "--intensity", blank, blank,
                 "--intensity-names", "b", "c", "-o", out)
    assert result.returncode == 2 and "no intensity image is named 'a'" in result.stderr


def test_sphere_area_and_sphericity(small_boxes, tmp_path):  # noqa: F811
    """A ball of radius 4 µm in voxels of 0.4 x 0.4 x 0.8 µm, read in boxes of 5 x 4 x 3: area
    equal to marching cubes in memory; 4 pi r^2 plus the voxel staircase (marching cubes on a
    binary image over-estimates a ball's area by about 10 %); sphericity just under 1."""
    voxel, radius = (0.4, 0.4, 0.8), 4.0
    z, y, x = np.indices((14, 24, 25), dtype=np.float64)
    d2 = ((x - 12.2) * voxel[0]) ** 2 + ((y - 11.6) * voxel[1]) ** 2 + ((z - 6.9) * voxel[2]) ** 2
    labels = (d2 <= radius ** 2).astype(np.uint8) * 3
    out = tmp_path / "ball.tsv"
    assert main(["measure", write_ome(tmp_path / "ball.ome.tif", labels, voxel), "-o", str(out)]) == 0
    row = pd.read_csv(out, sep="\t").iloc[0]
    vertices, faces, _, _ = marching_cubes(np.pad(labels == 3, 1).astype(np.float32), 0.5,
                                           spacing=voxel[::-1])
    assert row.surface_area_um2 == pytest.approx(mesh_surface_area(vertices, faces), rel=1e-10)
    assert 1.0 < row.surface_area_um2 / (4 * np.pi * radius ** 2) < 1.15
    assert 0.85 < row.sphericity < 1.0


@pytest.mark.parametrize("seed", range(6))
def test_surface_areas_of_touching_labels_equal_meshing_each_alone(seed):
    """The per-cube area table on densely packed labels (most cubes hold two or more labels),
    anisotropic voxels: every label is found (all have a surface: zeros pad the volume) and its
    area equals scikit-image's marching cubes of that label alone."""
    rng = np.random.default_rng(seed)
    cells = np.pad(rng.integers(0, 5, tuple(rng.integers(3, 12, 3))).astype(np.uint32), 1)
    spacing = rng.uniform(0.2, 3.0, 3)
    labels, areas = surface_areas(cells, spacing)
    assert labels.tolist() == sorted(set(np.unique(cells).tolist()) - {0})
    for label, area in zip(labels, areas):
        vertices, faces, _, _ = marching_cubes((cells == label).astype(np.float32), 0.5,
                                               allow_degenerate=False)
        assert area == pytest.approx(mesh_surface_area(vertices * spacing, faces), rel=1e-10)


def test_flat_and_thin_objects_have_zero_axes(small_boxes, tmp_path):  # noqa: F811
    """A one-voxel-thick diagonal plate and diagonal lines, cut by many boxes: the axes they
    lack are exactly 0 (their covariance's zero eigenvalues, not float rounding), the others
    positive."""
    labels = np.zeros((14, 15, 16), np.uint16)  # z, y, x
    z, y = np.meshgrid(np.arange(1, 13), np.arange(1, 14), indexing="ij")
    labels[z, y, y] = 1  # the plate x == y
    steps = np.arange(1, 13)
    labels[steps, steps, 15 - steps] = 2  # lines along (-1, 1, 1) and (1, 1, 0)
    labels[13, steps, steps] = 3
    path = write_ome(tmp_path / "thin.ome.tif", labels)
    out = tmp_path / "objects.tsv"
    assert main(["measure", path, "-o", str(out), "--jobs", "1"]) == 0
    table = pd.read_csv(out, sep="\t").set_index("label")
    assert table.loc[1, "axis_minor_um"] == 0 and table.loc[1, "axis_middle_um"] > 0
    for line in (2, 3):
        assert table.loc[line, "axis_minor_um"] == table.loc[line, "axis_middle_um"] == 0
        assert table.loc[line, "axis_major_um"] > 0
