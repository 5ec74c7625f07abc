"""`neurostation ingest`: volumes read back identical with TensorStore; metadata carried through."""

import json

import nibabel as nib
import numpy as np
import pytest
import tensorstore as ts
import tifffile


def read_with_tensorstore(path, scale=0):
    """One scale of the volume as TensorStore reads it, in (x, y, z, c) order."""
    store = ts.open({"driver": "neuroglancer_precomputed", "scale_index": scale,
                     "kvstore": {"driver": "file", "path": str(path)}}).result()
    return np.asarray(store.read().result())


def test_tiff_stack_round_trip(tmp_path, cli):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 65535, size=(37, 50, 70), dtype=np.uint16)  # z, y, x; not chunk multiples
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, stack, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})
    out = tmp_path / "vol"
    result = cli("ingest", src, "-o", out, "--chunk-size", "32,32,16")
    assert result.returncode == 0, result.stderr
    assert "progress: 100% writing scales" in result.stderr
    got = read_with_tensorstore(out)
    assert got.shape == (70, 50, 37, 1)
    np.testing.assert_array_equal(got[..., 0], stack.transpose(2, 1, 0))
    info = json.loads((out / "info").read_text())
    assert info["scales"][0]["resolution"] == [300.0, 300.0, 1500.0]
    assert info["scales"][0]["chunk_sizes"] == [[32, 32, 16]]
    assert not list(out.rglob("*.gz"))  # TensorStore cannot read cloud-volume's .gz names
    record = json.loads((out / "neurostation.json").read_text())
    assert record["complete"] is True and record["voxel_unit"] == "um"


def test_rgb_stack_keeps_channels(tmp_path, cli):
    stack = np.arange(2 * 6 * 5 * 3, dtype=np.uint8).reshape(2, 6, 5, 3)
    src = tmp_path / "rgb.tif"
    tifffile.imwrite(src, stack, photometric="rgb", metadata={"axes": "ZYXS"})
    out = tmp_path / "vol"
    assert cli("ingest", src, "-o", out, "--voxel-size", "1,1,1").returncode == 0
    np.testing.assert_array_equal(read_with_tensorstore(out), stack.transpose(2, 1, 0, 3))


def test_nifti_keeps_affine_and_mm_voxels(tmp_path, cli, data):
    out = tmp_path / "vol"
    result = cli("ingest", data("anatomical.nii"), "-o", out)
    assert result.returncode == 0, result.stderr
    img = nib.load(data("anatomical.nii"))
    np.testing.assert_array_equal(read_with_tensorstore(out)[..., 0], np.asanyarray(img.dataobj))
    info = json.loads((out / "info").read_text())
    assert info["scales"][0]["resolution"] == [2e6, 2e6, 2e6]  # 2 mm in nm
    record = json.loads((out / "neurostation.json").read_text())
    np.testing.assert_allclose(record["source_affine"], img.affine)


def test_voxel_size_override(tmp_path, cli, data):
    out = tmp_path / "vol"
    assert cli("ingest", data("stack.ome.tif"), "-o", out, "--voxel-size", "4,4,40").returncode == 0
    assert json.loads((out / "info").read_text())["scales"][0]["resolution"] == [4.0, 4.0, 40.0]


def _error(result):
    assert result.returncode == 2, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_4d_nifti_refused(tmp_path, cli, data):
    message = _error(cli("ingest", data("functional.nii"), "-o", tmp_path / "v"))
    assert message.startswith("error: functional.nii is a 4D NIfTI")
    assert not (tmp_path / "v" / "neurostation.json").exists()


def test_bad_voxel_size(tmp_path, cli, data):
    message = _error(cli("ingest", data("stack.ome.tif"), "-o", tmp_path / "v", "--voxel-size", "1,0,1"))
    assert message == "error: --voxel-size values must be positive, got '1,0,1'"


def test_truncated_input_leaves_no_complete_volume(tmp_path, cli, data):
    message = _error(cli("ingest", data("truncated.tif"), "-o", tmp_path / "v"))
    assert "truncated or corrupt" in message
    assert not (tmp_path / "v" / "neurostation.json").exists()


@pytest.mark.parametrize("url", ["nosuchproto://bucket/vol", "file:///proc/no/such/place"])
def test_unwritable_output(cli, data, url):
    message = _error(cli("ingest", data("stack.ome.tif"), "-o", url))
    assert message.startswith("error:") and url.split("://")[0] in message


@pytest.mark.parametrize("samples", [1, 3])
def test_tiff_boxes_read_alike_mapped_or_decoded(tmp_path, samples):
    """A box of an uncompressed stack (memory-mapped), of the same stack zlib-compressed (read
    through tifffile's zarr view) and big-endian: all equal to the array itself."""
    from neurostation.chunks.boxes import Box
    from neurostation.io.sources import TiffStack

    rng = np.random.default_rng(5)
    shape = (6, 20, 24) + ((samples,) if samples > 1 else ())
    zyx = rng.integers(0, 60000, shape).astype(np.uint16)
    box = Box((3, 5, 1), (17, 19, 5))
    expected = zyx[1:5, 5:19, 3:17]
    kinds = {"plain": {}, "zlib": {"compression": "zlib"}, "big": {"byteorder": ">"}}
    for name, options in kinds.items():
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, zyx, photometric="rgb" if samples > 1 else "minisblack",
                         metadata={"axes": "ZYXS" if samples > 1 else "ZYX"}, **options)
        stack = TiffStack(str(path), path.name)
        assert (stack.stored[1] is None) == (name == "zlib")  # only the zlib file is decoded
        data = stack.read(box)  # (x, y, z, c)
        assert data.dtype == np.uint16 and data.shape == (14, 14, 4, samples)
        np.testing.assert_array_equal(data.transpose(2, 1, 0, 3).reshape(expected.shape), expected)
