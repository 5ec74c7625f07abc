"""`neurostation info` on real files, checked against what nibabel and tifffile read directly."""

import gzip
import json
import os

import nibabel as nib
import numpy as np
import pytest
import tifffile

from neurostation.storage.info import describe

NIB_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")


def _table(stdout):
    lines = stdout.splitlines()
    assert lines[0] == "property\tvalue"
    return dict(line.split("\t", 1) for line in lines[1:])


@pytest.mark.parametrize("name", ["example4d.nii.gz", "functional.nii", "anatomical.nii"])
def test_nifti_matches_nibabel(name):
    path = os.path.join(NIB_DATA, name)
    img = nib.load(path)
    facts = describe(path)
    data = img.get_fdata()
    assert facts["shape"] == img.shape
    assert facts["voxel_size"] == pytest.approx(img.header.get_zooms()[:3])
    assert np.allclose(facts["affine"], img.affine)
    assert facts["min"] == pytest.approx(data.min())
    assert facts["max"] == pytest.approx(data.max())
    assert facts["mean"] == pytest.approx(data.mean())
    if img.ndim == 4:
        assert facts["size_t"] == img.shape[3]
        assert facts["tr_s"] == pytest.approx(float(img.header.get_zooms()[3]) *
                                              (1e-3 if img.header.get_xyzt_units()[1] == "msec" else 1))


def test_nifti_table_has_affine_and_tr(cli, data):
    result = cli("info", data("functional.nii"))
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert table["size_x"] == "17" and table["size_y"] == "21" and table["size_z"] == "3"
    assert table["size_t"] == "20" and table["tr_s"] == "2"
    assert table["voxel_unit"] == "mm"
    assert table["affine_row0"] == "-4,0,0,32"


def test_imagej_tiff_voxel_size_and_values(cli, data):
    result = cli("info", data("stack_imagej.tif"), "--format", "json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    ref = tifffile.imread(data("stack_imagej.tif"))
    assert (facts["size_x"], facts["size_y"], facts["size_z"]) == (ref.shape[2], ref.shape[1], ref.shape[0])
    assert facts["voxel_size"] == [0.5, 0.5, 2.0] and facts["voxel_unit"] == "um"
    assert (facts["min"], facts["max"]) == (int(ref.min()), int(ref.max()))
    assert facts["mean"] == pytest.approx(ref.mean())


def test_ome_tiff_physical_sizes(data):
    facts = describe(data("stack.ome.tif"))
    assert facts["format"] == "ome-tiff" and facts["axes"] == "ZYX"
    assert facts["voxel_size"] == (0.25, 0.25, 1.0) and facts["voxel_unit"] == "um"
    assert facts["max"] == 199


def test_plain_tiff_without_resolution_reports_unknown(tmp_path, cli):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.arange(12, dtype=np.uint8).reshape(3, 4), metadata={"axes": "YX"})
    table = _table(cli("info", path).stdout)
    assert table["voxel_unit"] == "unknown" and table["voxel_size_x"] == ""
    assert table["size_x"] == "4" and table["size_y"] == "3" and table["max"] == "11"


def test_rgb_tiff_counts_channels(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((5, 6, 3), np.uint8), photometric="rgb")
    facts = describe(str(path))
    assert (facts["size_x"], facts["size_y"], facts["size_c"]) == (6, 5, 3)


def test_precomputed_folder_and_reference(tmp_path, data):
    facts = describe(data("vol_ome"))
    assert facts["shape"] == (20, 16, 4, 1) and facts["complete"] is True
    assert facts["voxel_size"] == (250.0, 250.0, 1000.0) and facts["voxel_unit"] == "nm"
    assert facts["scales"][0]["chunk_size"] == [8, 8, 2]
    assert facts["max"] == 199 and facts["mean"] == pytest.approx(99.5)
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"url": "file://" + data("vol_ome")}))
    assert describe(str(ref))["shape"] == facts["shape"]


def test_no_stats_skips_values(cli, data):
    table = _table(cli("info", data("stack.ome.tif"), "--no-stats").stdout)
    assert "min" not in table and table["size_x"] == "20"


# --- bad input: one line, exit 2 -------------------------------------------------------

def _error(result):
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len([line for line in lines if not line.startswith("progress:")]) == 1
    return lines[-1]


def test_truncated_tiff(cli, data):
    assert _error(cli("info", data("truncated.tif"))).startswith(
        "error: TIFF truncated.tif is truncated or corrupt")


def test_tiff_cut_inside_pixel_data(tmp_path, cli):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint16), metadata={"axes": "YX"})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    message = _error(cli("info", path))
    assert message.startswith("error: TIFF cut.tif is truncated or corrupt")


def test_empty_file(tmp_path, cli):
    (tmp_path / "empty.tif").write_bytes(b"")
    assert _error(cli("info", tmp_path / "empty.tif")) == "error: input empty.tif is empty"


def test_missing_file(tmp_path, cli):
    assert "does not exist" in _error(cli("info", tmp_path / "nope.tif"))


def test_nifti_zero_voxel_size(tmp_path, cli):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    img.header.set_zooms((1.0, 0.0, 1.0))
    nib.save(img, tmp_path / "zero.nii.gz")
    assert "zero or invalid voxel size" in _error(cli("info", tmp_path / "zero.nii.gz"))


def test_nifti_broken_header(tmp_path, cli):
    raw = bytearray(gzip.decompress(open(os.path.join(NIB_DATA, "example4d.nii.gz"), "rb").read()))
    raw[0:4] = (1234).to_bytes(4, "little")  # sizeof_hdr must be 348
    (tmp_path / "broken.nii").write_bytes(bytes(raw))
    message = _error(cli("info", tmp_path / "broken.nii"))
    assert message.startswith("error: cannot read NIfTI broken.nii")


def test_folder_that_is_not_a_volume(tmp_path, cli):
    assert "without a Neuroglancer precomputed 'info' file" in _error(cli("info", tmp_path))
