"""`neurostation predict`: overlap-tiled ONNX inference equals the model on the whole volume.

The models are built here with the `onnx` package (known weights): a 3x3x3 convolution plus
sigmoid (compared with scipy.ndimage.correlate and with onnxruntime on the whole volume) and a
two-layer 2D net with softmax (compared with onnxruntime on each whole padded plane), on
volumes spanning many tiles and output boxes; bad input gets one `error:` line, exit 2."""

import json

import numpy as np
import onnxruntime
import pytest
import tifffile
from onnx_models import conv_sigmoid_3d, two_layer_2d
from scipy import ndimage
from test_ingest import read_with_tensorstore
from test_qc import write_ome

from neurostation.cli import main
from neurostation.processing import filter as filter_image
from neurostation.processing import predict

VOXEL_UM = (0.5, 0.5, 2.0)
KERNEL = np.random.default_rng(3).normal(0, 0.5, (3, 3, 3)).astype(np.float32)
BIAS = -0.2


@pytest.fixture
def small_boxes(monkeypatch):
    """Output boxes of a few thousand voxels (TIFF slabs of one plane), cache of a few cores."""
    monkeypatch.setattr(filter_image, "BOX_BUDGET", 16 * 16 * 8 * 4)
    monkeypatch.setattr(predict, "CACHE_BYTES", 3 * 14 ** 3 * 4)


@pytest.fixture
def volume(tmp_path):
    """A 19 x 37 x 45 (z, y, x) float32 OME-TIFF with 0.5 x 0.5 x 2 um voxels."""
    zyx = np.random.default_rng(7).random((19, 37, 45)).astype(np.float32)
    return write_ome(tmp_path / "volume.ome.tif", zyx, VOXEL_UM), zyx


def whole_volume(model_path, batch):
    """onnxruntime on a whole (N, C, ...) array."""
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch.astype(np.float32)})[0]


def conv_reference(zyx):
    """sigmoid(correlate(image, kernel) + bias) with zero padding, in float64."""
    conv = ndimage.correlate(zyx.astype(np.float64), KERNEL.astype(np.float64), mode="constant")
    return 1 / (1 + np.exp(-(conv + BIAS)))


def read_tiff(path):
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].axes, tif.asarray()


@pytest.mark.parametrize("margin", ["1,1,1", "3,2,4"])
def test_3d_model_tiles_equal_the_whole_volume(tmp_path, volume, small_boxes, margin):
    path, zyx = volume
    model = conv_sigmoid_3d(tmp_path / "conv.onnx", KERNEL, BIAS)  # fixed 16^3 input
    out = tmp_path / "prob.tif"
    assert main(["predict", path, "--model", str(model), "-o", str(out),
                 "--margin", margin]) == 0
    axes, result = read_tiff(out)
    assert axes == "ZYX" and result.dtype == np.float32 and result.shape == zyx.shape
    np.testing.assert_allclose(result, conv_reference(zyx), atol=1e-6)
    dynamic = conv_sigmoid_3d(tmp_path / "dyn.onnx", KERNEL, BIAS, shape=(1, 1, None, None, None))
    np.testing.assert_allclose(result, whole_volume(dynamic, zyx[None, None])[0, 0], atol=1e-6)
    with tifffile.TiffFile(out) as tif:  # the voxel size travels with the data
        pixels = tif.ome_metadata
    assert 'PhysicalSizeX="0.5"' in pixels and 'PhysicalSizeZ="2.0"' in pixels


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_precomputed_output_threshold_mode(tmp_path, volume, small_boxes, jobs):
    path, zyx = volume
    model = conv_sigmoid_3d(tmp_path / "conv.onnx", KERNEL, BIAS, shape=(None, 1, None, None, None))
    out = tmp_path / "mask"
    assert main(["predict", path, "--model", str(model), "-o", str(out), "--mode", "threshold",
                 "--threshold", "0.6", "--tile", "12,10,8", "--margin", "2,1,1",
                 "--chunk-size", "16,16,8", "--jobs", jobs]) == 0
    info = json.loads((out / "info").read_text())
    assert info["type"] == "segmentation" and info["data_type"] == "uint8"
    assert info["scales"][0]["resolution"] == [500.0, 500.0, 2000.0]
    mask = read_with_tensorstore(out)[..., 0].transpose(2, 1, 0)
    expected = conv_reference(zyx) > 0.6
    assert 0.1 < expected.mean() < 0.9
    # voxels within float rounding of the threshold may go either way
    unsure = np.abs(conv_reference(zyx) - 0.6) < 1e-6
    np.testing.assert_array_equal(mask[~unsure], expected[~unsure])
    record = json.loads((out / "neurostation.json").read_text())
    assert record["command"] == "predict" and record["mode"] == "threshold"


def planes_reference(model_path, zyx_c, pad):
    """The 2D model on each whole plane padded by `pad` (reflect), cropped: (Z, K, Y, X)."""
    out = []
    for plane in zyx_c:  # (C, Y, X)
        padded = np.pad(plane, [(0, 0), (pad, pad), (pad, pad)], mode="symmetric")
        out.append(whole_volume(model_path, padded[None])[0][:, pad:-pad, pad:-pad])
    return np.stack(out)


def test_2d_model_per_plane_probabilities_and_argmax(tmp_path, volume, small_boxes):
    path, zyx = volume
    model = two_layer_2d(tmp_path / "net.onnx", seed=1, classes=3)  # dynamic Y, X
    expected = planes_reference(model, zyx[:, None] * 2 - 1, 2)
    common = ["--model", str(model), "--tile", "20,16", "--margin", "2,2", "--border", "reflect",
              "--input-scale", "2", "--input-offset", "-1"]
    assert main(["predict", path, "-o", str(tmp_path / "p.tif"), *common]) == 0
    axes, probs = read_tiff(tmp_path / "p.tif")
    assert axes == "ZYXS" and probs.shape == zyx.shape + (3,)
    np.testing.assert_allclose(probs, expected.transpose(0, 2, 3, 1), atol=1e-6)
    assert main(["predict", path, "-o", str(tmp_path / "a.tif"), "--mode", "argmax", *common]) == 0
    _, labels = read_tiff(tmp_path / "a.tif")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}
    top = np.sort(expected, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-6
    np.testing.assert_array_equal(labels[clear], np.argmax(expected, axis=1)[clear])


def test_too_small_a_margin_shows_the_tile_seams(tmp_path, volume, small_boxes):
    """The comparison can fail: a margin below the receptive field (2) breaks at the seams."""
    path, zyx = volume
    model = two_layer_2d(tmp_path / "net.onnx", classes=2)
    out = tmp_path / "p.tif"
    assert main(["predict", path, "--model", str(model), "-o", str(out), "--tile", "20,16",
                 "--margin", "1,1", "--border", "reflect"]) == 0
    result = read_tiff(out)[1]
    expected = planes_reference(model, zyx[:, None], 2).transpose(0, 2, 3, 1)
    wrong = np.abs(result - expected).max(axis=(0, 3)) > 1e-4
    assert wrong.any()
    rows, cols = np.nonzero(wrong)
    # only next to the seams of the 18 x 14 cores
    assert np.all(np.isin(rows % 14, (0, 13)) | np.isin(cols % 18, (0, 17)))


def test_channels_fed_to_the_model(tmp_path, small_boxes):
    zyxc = np.random.default_rng(2).random((3, 30, 26, 2)).astype(np.float32)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, zyxc, photometric="minisblack", planarconfig="contig",
                     metadata={"axes": "ZYXS"})
    both = two_layer_2d(tmp_path / "both.onnx", channels_in=2, shape=(1, 32, 32))  # fixed tile
    out = tmp_path / "both.tif"
    assert main(["predict", str(path), "--model", str(both), "-o", str(out), "--margin", "3,3",
                 "--border", "mirror"]) == 0
    expected = []
    for plane in zyxc.transpose(0, 3, 1, 2):
        padded = np.pad(plane, [(0, 0), (3, 3), (3, 3)], mode="reflect")  # scipy's mirror
        dyn = two_layer_2d(tmp_path / "dyn.onnx", channels_in=2)
        expected.append(whole_volume(dyn, padded[None])[0][:, 3:-3, 3:-3])
    np.testing.assert_allclose(read_tiff(out)[1], np.stack(expected).transpose(0, 2, 3, 1),
                               atol=1e-6)
    one = two_layer_2d(tmp_path / "one.onnx")
    assert main(["predict", str(path), "--model", str(one), "-o", str(tmp_path / "c.tif"),
                 "--channel", "1", "--tile", "16,16", "--margin", "2,2",
                 "--border", "reflect"]) == 0
    expected = planes_reference(one, zyxc[..., 1][:, None], 2).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(read_tiff(tmp_path / "c.tif")[1], expected, atol=1e-6)


def run_error(capsys, *args, command="predict"):
    """The one `error:` line (exit 2) of `neurostation COMMAND ARGS` run in this process."""
    assert main([str(a) for a in [command, *args]]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines()
             if not line.startswith("progress:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_models_and_options(tmp_path, volume, capsys):
    path, _ = volume
    out = tmp_path / "out.tif"
    text = tmp_path / "model.onnx"
    text.write_text("not a model\n")
    assert run_error(capsys, path, "--model", text, "-o", out).startswith(
        "error: model.onnx is not a usable ONNX model: 7 : INVALID_PROTOBUF")
    three_d = conv_sigmoid_3d(tmp_path / "conv.onnx", KERNEL, BIAS)
    two_in = two_layer_2d(tmp_path / "two.onnx", channels_in=2)
    one_class = conv_sigmoid_3d(tmp_path / "dyn.onnx", KERNEL, BIAS, (1, 1, None, None, None))
    two_class = two_layer_2d(tmp_path / "net.onnx")
    cases = [
        ((two_in,), "error: two.onnx takes 2 input channel(s) but volume.ome.tif gives 1"),
        ((three_d, "--max-model-size", "0.0001"),
         "error: the model file conv.onnx is 0 MiB, more than --max-model-size 0.0001 MiB"),
        ((three_d, "--tile", "8,8,8"),
         "error: --tile 8,8,8 asks 8 voxels in x but conv.onnx takes exactly 16"),
        ((three_d, "--margin", "8,1,1"),
         "error: --margin 8 in x leaves no core of the 16-voxel tile; it must be less than half "
         "the tile"),
        ((three_d, "--margin", "1,1"),
         "error: --margin must be 3 whole numbers X,Y,Z of at least 0 for this 3D model, got '1,1'"),
        ((one_class, "--mode", "argmax"),
         "error: dyn.onnx gives one output channel; argmax needs several (use --mode threshold)"),
        ((two_class, "--mode", "threshold"),
         "error: net.onnx gives 2 output channels; choose the one to threshold with --class (0 to 1)"),
        ((tmp_path / "missing.onnx",), "error: the model file missing.onnx does not exist"),
    ]
    for extra, message in cases:
        assert run_error(capsys, path, "--model", *extra, "-o", out) == message
    assert not out.exists() and not list(tmp_path.glob("out*"))


def test_model_of_the_wrong_rank(tmp_path, volume, capsys):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "h", "w"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "flat.onnx")
    assert run_error(capsys, volume[0], "--model", tmp_path / "flat.onnx", "-o",
                     tmp_path / "o.tif") == (
        "error: flat.onnx takes a rank-3 input [1, 'h', 'w']; expected (N, C, Y, X) for a 2D "
        "model or (N, C, Z, Y, X) for a 3D model")
    plane = write_ome(tmp_path / "plane.ome.tif", volume[1][:1], VOXEL_UM)
    conv = conv_sigmoid_3d(tmp_path / "conv.onnx", KERNEL, BIAS)
    assert run_error(capsys, plane, "--model", conv, "-o", tmp_path / "o.tif") == (
        "error: conv.onnx is a 3D model (input N, C, Z, Y, X) but plane.ome.tif is a single "
        "plane; use a 2D model (N, C, Y, X)")
    assert not list(tmp_path.glob("o*"))
