"""Small ONNX segmentation models with known weights, built with the `onnx` package (no weights
can be downloaded here): used by tests/test_predict.py and by scripts/make_test_data.py."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(nodes, inputs, outputs, weights, path):
    graph = helper.make_graph(nodes, "neurostation-test", inputs, outputs,
                              [numpy_helper.from_array(w.astype(np.float32), name)
                               for name, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="neurostation-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def conv_sigmoid_3d(path, kernel, bias, shape=(1, 1, 16, 16, 16)):
    """One 3D convolution (kernel (c_in, kz, ky, kx), odd edges, zero padding keeping the size)
    plus bias, then a sigmoid: input (N, C, Z, Y, X) of `shape` (None entries are dynamic),
    output (N, 1, Z, Y, X)."""
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim == 3:
        kernel = kernel[None]
    pads = [k // 2 for k in kernel.shape[1:]] * 2
    names = [d if d is not None else f"d{i}" for i, d in enumerate(shape)]
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["conv"], pads=pads),
             helper.make_node("Sigmoid", ["conv"], ["probability"])]
    out = [names[0], 1, *names[2:]]
    return _save(nodes, [_tensor("image", names)], [_tensor("probability", out)],
                 {"w": kernel[None], "b": np.array([bias])}, path)


def two_layer_2d(path, seed=0, channels_in=1, hidden=4, classes=2, shape=(1, None, None)):
    """A small 2D net: 3x3 conv (channels_in -> hidden) + ReLU, 3x3 conv (hidden -> classes),
    softmax over the classes; receptive field radius 2. Input (N, C, Y, X); `shape` gives N, Y,
    X (None: dynamic). Weights from `seed`."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (hidden, channels_in, 3, 3))
    w2 = rng.normal(0, 0.5, (classes, hidden, 3, 3))
    b1, b2 = rng.normal(0, 0.1, hidden), rng.normal(0, 0.1, classes)
    n, y, x = (d if d is not None else name for d, name in zip(shape, ("n", "h", "w")))
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Softmax", ["c2"], ["probabilities"], axis=1)]
    return _save(nodes, [_tensor("image", [n, channels_in, y, x])],
                 [_tensor("probabilities", [n, classes, y, x])],
                 {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, path)
