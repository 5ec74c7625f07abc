"""`neurostation pyramid`: scales added in place equal the in-memory reference; re-encoding."""

import json

import numpy as np
import tifffile

from test_ingest import read_with_tensorstore
from test_pyramid import reference_pyramid, scale_factors


def test_adds_missing_scales_in_place(tmp_path, cli):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, size=(20, 70, 90), dtype=np.uint32) * 1000
    src = tmp_path / "labels.tif"
    tifffile.imwrite(src, labels, metadata={"axes": "ZYX"})
    vol = tmp_path / "vol"
    assert cli("ingest", src, "-o", vol, "--layer-type", "segmentation", "--levels", "0",
               "--chunk-size", "16,16,4", "--voxel-size", "8,8,8").returncode == 0
    assert len(json.loads((vol / "info").read_text())["scales"]) == 1
    result = cli("pyramid", vol)
    assert result.returncode == 0, result.stderr
    factors, scales = scale_factors(vol)
    assert len(scales) > 2
    expected = reference_pyramid(labels.transpose(2, 1, 0)[..., None], factors, "segmentation")
    for i, level in enumerate(expected):
        np.testing.assert_array_equal(read_with_tensorstore(vol, i), level, err_msg=f"scale {i}")
    record = json.loads((vol / "neurostation.json").read_text())
    assert record["complete"] and record["command"] == "pyramid" and record["history"] == ["ingest"]


def test_reencode_to_jpeg_with_new_chunks(tmp_path, cli):
    y, x = np.mgrid[0:80, 0:100]
    stack = np.stack([(np.sin((x + y + z) / 9.0) * 90 + 120).astype(np.uint8) for z in range(8)])
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, metadata={"axes": "ZYX"})
    raw = tmp_path / "raw"
    assert cli("ingest", src, "-o", raw, "--voxel-size", "1,1,1").returncode == 0
    view = tmp_path / "view"
    result = cli("pyramid", raw, "-o", view, "--encoding", "jpeg", "--chunk-size", "32,32,8")
    assert result.returncode == 0, result.stderr
    info = json.loads((view / "info").read_text())
    assert {s["encoding"] for s in info["scales"]} == {"jpeg"}
    assert info["scales"][0]["chunk_sizes"] == [[32, 32, 8]]
    error = np.abs(read_with_tensorstore(view).astype(float) - read_with_tensorstore(raw))
    assert error.mean() < 2.0


def test_new_encoding_needs_an_output(tmp_path, cli, data):
    result = cli("pyramid", data("vol_ome"), "--encoding", "jpeg")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --chunk-size and --encoding make a new volume: give -o OUTPUT"
