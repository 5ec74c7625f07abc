"""`neurostation cutout`: regions at any scale, exact voxels, correct affine and voxel size."""

import json

import nibabel as nib
import numpy as np
import tifffile

from test_ingest import read_with_tensorstore


def _ingest(cli, src, out, *args):
    result = cli("ingest", src, "-o", out, *args)
    assert result.returncode == 0, result.stderr
    return out


def test_nifti_round_trip_keeps_affine_and_voxels(tmp_path, cli, data):
    """NIfTI -> ingest -> cutout (whole, scale 0) -> NIfTI gives back the same affine and voxels."""
    vol = _ingest(cli, data("anatomical.nii"), tmp_path / "vol")
    out = tmp_path / "back.nii.gz"
    result = cli("cutout", vol, "-o", out)
    assert result.returncode == 0, result.stderr
    original, back = nib.load(data("anatomical.nii")), nib.load(out)
    np.testing.assert_allclose(back.affine, original.affine)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(original.dataobj))


def test_nifti_region_affine_maps_to_same_world_points(tmp_path, cli, data):
    vol = _ingest(cli, data("anatomical.nii"), tmp_path / "vol")
    out = tmp_path / "part.nii"
    assert cli("cutout", vol, "--bbox", "3,4,5,20,30,15", "-o", out).returncode == 0
    original, part = nib.load(data("anatomical.nii")), nib.load(out)
    world_of_first = original.affine @ [3, 4, 5, 1]
    np.testing.assert_allclose(part.affine @ [0, 0, 0, 1], world_of_first)
    np.testing.assert_array_equal(np.asanyarray(part.dataobj),
                                  np.asanyarray(original.dataobj)[3:20, 4:30, 5:15])


def test_small_box_is_not_mistaken_for_rgb(tmp_path, cli, data):
    out = tmp_path / "r.tif"
    assert cli("cutout", data("vol_ome"), "--bbox", "0,0,0,4,4,2", "-o", out).returncode == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX" and tif.asarray().mean() == 29.5


def test_tiff_region_at_coarser_scale(tmp_path, cli):
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 255, size=(16, 96, 128), dtype=np.uint8)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, metadata={"axes": "ZYX"})
    vol = _ingest(cli, src, tmp_path / "vol", "--chunk-size", "32,32,8", "--voxel-size", "0.5,0.5,2",
                  "--voxel-unit", "um")
    out = tmp_path / "r.ome.tif"
    result = cli("cutout", vol, "--bbox", "5,6,2,40,30,10", "--mip", "1", "-o", out)
    assert result.returncode == 0, result.stderr
    expected = read_with_tensorstore(vol, 1)[5:40, 6:30, 2:10, 0].transpose(2, 1, 0)
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.asarray(), expected)
        assert tif.series[0].axes == "ZYX"
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeZ"]) == (1.0, 2.0)  # x halved once


def _error(result):
    assert result.returncode == 2, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_bbox_outside_volume(tmp_path, cli, data):
    out = tmp_path / "r.tif"
    message = _error(cli("cutout", data("vol_ome"), "--bbox", "0,0,0,30,10,2", "-o", out))
    assert message == ("error: --bbox 0,0,0,30,10,2 is empty or outside the volume, which spans "
                       "0,0,0 to 20,16,4 at this scale")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_missing_scale(tmp_path, cli, data):
    message = _error(cli("cutout", data("vol_ome"), "--mip", "7", "-o", tmp_path / "r.tif"))
    assert message == "error: --mip 7 does not exist: the volume has scales 0 to 2"


def test_incomplete_volume_refused(tmp_path, cli, data):
    vol = _ingest(cli, data("stack.ome.tif"), tmp_path / "vol")
    (vol / "neurostation.json").unlink()
    message = _error(cli("cutout", vol, "-o", tmp_path / "r.tif"))
    assert "is incomplete (no neurostation.json)" in message


def test_reference_input(tmp_path, cli, data):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"url": "file://" + data("vol_ome")}))
    out = tmp_path / "r.tif"
    assert cli("cutout", ref, "--bbox", "0,0,0,4,4,1", "-o", out).returncode == 0
    assert tifffile.imread(out).tolist() == [[y * 2 + x for x in range(4)] for y in range(4)]
