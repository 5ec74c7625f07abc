"""`neurostation label`: chunk-wise connected components equal to cc3d and scikit-image in memory
(same partition, same numbering), across many small boxes, with size filter and border removal."""

import json

import cc3d
import numpy as np
import pytest
import tifffile
from skimage.measure import label as sk_label
from skimage.segmentation import clear_border

from neurostation import cli
from neurostation.processing import label as label_cmd
from test_ingest import read_with_tensorstore

SKIMAGE_CONNECTIVITY = {6: 1, 18: 2, 26: 3}


@pytest.fixture
def small_boxes(monkeypatch):
    """Force a labelling grid of odd little boxes (not dividing the volume) in this process."""
    monkeypatch.setattr(label_cmd, "box_size", lambda shape, voxel_nm, args: (7, 5, 6))


def write_zyx(path, zyx, voxel_um=(0.5, 0.5, 2.0)):
    tifffile.imwrite(path, zyx, ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", **{f"PhysicalSize{a}": v for a, v in zip("XYZ", voxel_um)},
                               **{f"PhysicalSize{a}Unit": "µm" for a in "XYZ"}})
    return path


def reference(zyx_mask, connectivity):
    """cc3d on the whole volume in x-fastest order (our numbering), as a ZYX array."""
    xyz = np.asfortranarray(zyx_mask.transpose(2, 1, 0))
    return cc3d.connected_components(xyz, connectivity=connectivity).transpose(2, 1, 0)


def same_partition(a, b):
    """True when the non-zero labels of a and b are in one-to-one correspondence voxel by voxel."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))


def error_line(result):
    """The one line a failed run prints besides its progress lines."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("progress:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


def run_label(*args):
    return cli.main([str(a) for a in ["label", *args]])


def noisy_mask(seed=4, shape=(17, 23, 29), density=0.33):
    return np.random.default_rng(seed).random(shape) < density


# just under each connectivity's percolation threshold: many objects, big ones spanning boxes
@pytest.mark.parametrize("connectivity,density", [(6, 0.28), (18, 0.12), (26, 0.085)])
def test_same_partition_as_cc3d_and_skimage(tmp_path, small_boxes, connectivity, density):
    mask = noisy_mask(density=density)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    out = tmp_path / "labels.tif"
    assert run_label(src, "-o", out, "--connectivity", connectivity) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX"
        labels = tif.asarray()
    ref = reference(mask, connectivity)
    sk = sk_label(mask, connectivity=SKIMAGE_CONNECTIVITY[connectivity])
    assert ref.max() > 50 and np.bincount(ref.ravel())[1:].max() > 40  # many objects, some big
    assert same_partition(labels, ref) and same_partition(labels, sk)
    np.testing.assert_array_equal(labels, ref)  # the numbering too: first voxel, x fastest


def test_parallel_jobs_give_the_same_labels(tmp_path, small_boxes):
    mask = noisy_mask(seed=9)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    assert run_label(src, "-o", tmp_path / "a.tif", "--jobs", "2") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), reference(mask, 26))


def diagonal_case(steps):
    """Voxels on both sides of a box corner (7, 5, 6) touching only along the given axes."""
    mask = np.zeros((12, 10, 14), bool)
    mask[5, 4, 6] = True  # (x 6, y 4, z 5): the last voxel of box (0, 0, 0)
    dx, dy, dz = steps
    mask[5 + dz, 4 + dy, 6 + dx] = True
    return mask


@pytest.mark.parametrize("steps,joined", [
    ((1, 0, 0), {6: True, 18: True, 26: True}),     # across a face
    ((1, 1, 0), {6: False, 18: True, 26: True}),    # across an edge of boxes (x, y)
    ((0, 1, 1), {6: False, 18: True, 26: True}),    # across an edge of boxes (y, z)
    ((1, 1, 1), {6: False, 18: False, 26: True}),   # across the corner of eight boxes
])
def test_objects_touching_across_box_corners_and_edges(tmp_path, small_boxes, steps, joined):
    mask = diagonal_case(steps)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    for connectivity, one in joined.items():
        out = tmp_path / f"l{connectivity}.tif"
        assert run_label(src, "-o", out, "--connectivity", connectivity) == 0
        labels = tifffile.imread(out)
        assert labels.max() == (1 if one else 2), (connectivity, steps)
        np.testing.assert_array_equal(labels, reference(mask, connectivity))


def test_anti_diagonal_across_a_box_corner(tmp_path, small_boxes):
    """x up, y down, z up across the corner: the offsets with a negative component."""
    mask = np.zeros((12, 10, 14), bool)
    mask[5, 5, 6] = mask[6, 4, 7] = True  # box (0,1,0) to box (1,0,1)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    assert run_label(src, "-o", tmp_path / "l.tif") == 0
    assert tifffile.imread(tmp_path / "l.tif").max() == 1
    assert run_label(src, "-o", tmp_path / "l18.tif", "--connectivity", "18") == 0
    assert tifffile.imread(tmp_path / "l18.tif").max() == 2


def filtered(ref, min_voxels=0, remove_border=False):
    """In-memory size filter and border removal, renumbered in the order of the survivors."""
    ids, counts = np.unique(ref[ref > 0], return_counts=True)
    keep = set(ids[counts >= min_voxels].tolist())
    if remove_border:
        faces = [ref[0], ref[-1], ref[:, 0], ref[:, -1], ref[:, :, 0], ref[:, :, -1]]
        keep -= set(np.unique(np.concatenate([f.ravel() for f in faces])).tolist())
    lookup = np.zeros(ref.max() + 1, np.uint32)
    lookup[sorted(keep)] = np.arange(1, len(keep) + 1)
    return lookup[ref]


def test_size_filter_in_voxels_and_in_um3(tmp_path, small_boxes):
    mask = noisy_mask(seed=2, density=0.4)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8), (0.5, 0.5, 2.0))
    ref = reference(mask, 6)
    expected = filtered(ref, min_voxels=5)
    assert 0 < expected.max() < ref.max()
    assert run_label(src, "-o", tmp_path / "v.tif", "--connectivity", "6", "--min-size", "5") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "v.tif"), expected)
    # a voxel is 0.5 um3: 2.5 um3 is 5 voxels, 2.2 um3 rounds up to 5 too
    for size in ("2.5um3", "2.2 µm³"):
        assert run_label(src, "-o", tmp_path / "u.tif", "--connectivity", "6", "--min-size", size) == 0
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "u.tif"), expected)


def test_remove_border_with_size_filter(tmp_path, small_boxes):
    mask = noisy_mask(seed=5, density=0.08)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    expected = filtered(reference(mask, 26), min_voxels=2, remove_border=True)
    assert expected.max() > 3
    assert run_label(src, "-o", tmp_path / "b.tif", "--remove-border", "--min-size", "2") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), expected)
    assert run_label(src, "-o", tmp_path / "c.tif", "--remove-border") == 0
    assert same_partition(tifffile.imread(tmp_path / "c.tif"), clear_border(sk_label(mask)))


def test_remove_border_of_a_2d_image_ignores_its_z_faces(tmp_path, small_boxes):
    mask = np.random.default_rng(3).random((60, 70)) < 0.3
    src = tmp_path / "plane.tif"
    tifffile.imwrite(src, mask.astype(np.uint8), metadata={"axes": "YX"})
    assert run_label(src, "-o", tmp_path / "l.tif", "--connectivity", "6", "--remove-border") == 0
    labels = tifffile.imread(tmp_path / "l.tif").reshape(mask.shape)
    expected = clear_border(sk_label(mask, connectivity=1))
    assert expected.max() > 100 and same_partition(labels, expected)


def test_threshold_on_an_image(tmp_path, small_boxes):
    image = np.random.default_rng(7).integers(0, 1000, (15, 21, 25)).astype(np.uint16)
    src = write_zyx(tmp_path / "img.ome.tif", image)
    assert run_label(src, "-o", tmp_path / "t.tif", "--threshold", "600") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "t.tif"), reference(image > 600, 26))


@pytest.mark.parametrize("encoding", [None, "raw"])
def test_precomputed_segmentation_with_pyramid(tmp_path, small_boxes, encoding):
    """The precomputed output on another grid than the labelling boxes, boxes written by two
    processes: every scale readable by TensorStore, scale 0 equal to cc3d, the record says
    what was done; compressed_segmentation unless raw is asked for."""
    mask = noisy_mask(seed=11, shape=(12, 40, 36))
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    out = tmp_path / "labels"
    chosen = ["--encoding", encoding] if encoding else []
    assert run_label(src, "-o", out, "--chunk-size", "8,8,4", "--connectivity", "18",
                     "--jobs", "2", *chosen) == 0
    info = json.loads((out / "info").read_text())
    assert info["type"] == "segmentation" and info["data_type"] == "uint32"
    assert {s["encoding"] for s in info["scales"]} == {encoding or "compressed_segmentation"}
    assert len(info["scales"]) > 1
    labels = read_with_tensorstore(out, 0)[..., 0]  # x, y, z
    np.testing.assert_array_equal(labels, reference(mask, 18).transpose(2, 1, 0))
    coarse = read_with_tensorstore(out, 1)
    assert set(np.unique(coarse)) <= set(np.unique(labels))
    record = json.loads((out / "neurostation.json").read_text())
    assert record["command"] == "label" and record["objects"] == labels.max()


def test_precomputed_input(tmp_path, data):
    """A precomputed label volume as input (test-data labels_vol: segments 1, 2, 3 side by side
    touch each other, so as a mask they are one object)."""
    assert run_label(data("labels_vol"), "-o", tmp_path / "l.tif", "--connectivity", "6") == 0
    labels = tifffile.imread(tmp_path / "l.tif")
    assert labels.shape == (4, 16, 20) and labels.max() == 1 and (labels > 0).sum() == 4 * 12 * 18


def test_coarser_scale_of_a_precomputed_input(tmp_path):
    """--mip 1 labels the input's second scale: the same labels as cc3d on that scale read in
    memory, at that scale's voxel size."""
    mask = noisy_mask(seed=8, shape=(8, 40, 36), density=0.4)
    src = write_zyx(tmp_path / "mask.ome.tif", mask.astype(np.uint8))
    assert cli.main(["ingest", str(src), "-o", str(tmp_path / "vol"), "--chunk-size", "8,8,4"]) == 0
    assert run_label(tmp_path / "vol", "-o", tmp_path / "l.tif", "--mip", "1") == 0
    coarse = read_with_tensorstore(tmp_path / "vol", 1)[..., 0].transpose(2, 1, 0)  # z, y, x
    assert coarse.shape == (8, 20, 18) and coarse.any()
    labels = tifffile.imread(tmp_path / "l.tif")
    np.testing.assert_array_equal(labels, reference(coarse != 0, 26))
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.ome_metadata and 'PhysicalSizeX="1.0"' in tif.ome_metadata


@pytest.mark.parametrize("args,message", [
    (["--mip", "1"], "error: --mip applies to precomputed volumes; mask.ome.tif is a tiff file"),
    (["--threshold", "5"], "error: --threshold 5 is at or above its maximum: mask.ome.tif's values span 0 to 1"),
    (["--threshold", "-1"], "error: --threshold -1 is below its minimum"),
    (["--connectivity", "8"], "error: argument --connectivity: invalid choice: 8"),
    (["--min-size", "ten"], "error: --min-size must be a positive number of voxels"),
    (["--min-size", "3km3"], "error: --min-size unit must be nm3, um3 or mm3"),
    (["--levels", "2"], "error: --levels applies to precomputed output"),
])
def test_bad_options(tmp_path, cli, args, message):
    src = write_zyx(tmp_path / "mask.ome.tif", noisy_mask().astype(np.uint8))
    out = tmp_path / "out.tif"
    assert error_line(cli("label", src, "-o", out, *args)).startswith(message)
    assert list(tmp_path.iterdir()) == [src]


def test_empty_volume_and_missing_info(tmp_path, cli):
    src = write_zyx(tmp_path / "empty.ome.tif", np.zeros((4, 8, 8), np.uint8))
    assert (error_line(cli("label", src, "-o", tmp_path / "labels"))
            == "error: empty.ome.tif is empty: no non-zero voxel to label")
    (tmp_path / "noinfo").mkdir()
    message = error_line(cli("label", tmp_path / "noinfo", "-o", tmp_path / "labels"))
    assert message.startswith("error: ") and "info" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.ome.tif", "noinfo"]


def test_unit_size_needs_a_voxel_size(tmp_path, cli):
    src = tmp_path / "plain.tif"
    tifffile.imwrite(src, noisy_mask().astype(np.uint8), metadata={"axes": "ZYX"})
    message = error_line(cli("label", src, "-o", tmp_path / "l.tif", "--min-size", "2um3"))
    assert message.startswith("error: --min-size in a unit needs the voxel size")
    assert not (tmp_path / "l.tif").exists()
    result = cli("label", src, "-o", tmp_path / "l.tif", "--min-size", "2um3",
                 "--voxel-size", "1,1,1", "--voxel-unit", "um")
    assert result.returncode == 0, result.stderr
    expected = filtered(reference(noisy_mask(), 26), min_voxels=2)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), expected)
