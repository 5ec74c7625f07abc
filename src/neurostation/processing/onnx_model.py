"""An ONNX model file as a checked, picklable tile function for `predict`.

The file is read as bytes (size-capped) and parsed by onnxruntime on the CPU: ONNX is a
protobuf graph, so loading it runs no code from the file (no unpickling). The model's one
input is (N, C, Z, Y, X) for 3D models or (N, C, Y, X) for 2D ones; its first output must keep
the spatial size (a dense segmentation or probability map, any number of channels).
"""

import os

import numpy as np

from ..errors import UserError

# onnxruntime element types -> numpy dtypes of the tensors we feed
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
               "tensor(int8)": np.int8, "tensor(uint16)": np.uint16,
               "tensor(int16)": np.int16, "tensor(int32)": np.int32}


def _fixed(dim):
    """A dimension's size when the model fixes it, else None (symbolic or unknown)."""
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxModel:
    """A checked ONNX segmentation model: .rank (2 or 3 spatial axes), .channels (input
    channels, None when dynamic), .tile_zyx (fixed spatial input size, None per dynamic axis),
    .input_dtype; run(tile (C, [Z,] Y, X)) -> (K, [Z,] Y, X) float32. Picklable: the session
    is made again in each process from the model's bytes."""

    def __init__(self, path, threads=1, max_mib=1024):
        name = os.path.basename(str(path))
        if not os.path.isfile(path):
            raise UserError(f"the model file {name} does not exist")
        size = os.path.getsize(path)
        if size > max_mib * (1 << 20):
            raise UserError(f"the model file {name} is {size / (1 << 20):.0f} MiB, more than "
                            f"--max-model-size {max_mib} MiB")
        with open(path, "rb") as handle:
            self.data = handle.read()
        self.name, self.threads, self._session = name, threads, None
        self._describe(self.session())

    def session(self):
        """The onnxruntime session (CPU), made on first use in this process."""
        if self._session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # idle threads sleep instead of spinning: a busy shared node would stall them
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3  # errors only: warnings would clutter the job log
            try:
                self._session = onnxruntime.InferenceSession(
                    self.data, options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own classes, all Exception
                detail = " ".join(str(exc).split()).replace("[ONNXRuntimeError] : ", "")
                raise UserError(f"{self.name} is not a usable ONNX model: {detail}") from None
        return self._session

    def __getstate__(self):
        return {**self.__dict__, "_session": None}

    def _describe(self, session):
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1:
            raise UserError(f"{self.name} takes {len(inputs)} inputs; a segmentation model "
                            "takes one image tensor")
        tensor = inputs[0]
        if tensor.type not in INPUT_TYPES:
            raise UserError(f"{self.name} takes a {tensor.type} input; supported: "
                            f"{', '.join(INPUT_TYPES)}")
        shape = list(tensor.shape)
        if len(shape) not in (4, 5):
            raise UserError(f"{self.name} takes a rank-{len(shape)} input {shape}; expected "
                            "(N, C, Y, X) for a 2D model or (N, C, Z, Y, X) for a 3D model")
        if _fixed(shape[0]) not in (None, 1):
            raise UserError(f"{self.name} has a fixed batch size of {shape[0]}; only batch 1 "
                            "or a dynamic batch is supported")
        out = outputs[0]
        if len(out.shape) != len(shape):
            raise UserError(f"{self.name}'s output {out.name} has rank {len(out.shape)} but its "
                            f"input rank {len(shape)}; a segmentation model keeps the image's "
                            "axes (N, K, [Z,] Y, X)")
        self.input_name, self.output_name = tensor.name, out.name
        self.input_dtype = np.dtype(INPUT_TYPES[tensor.type])
        self.rank = len(shape) - 2
        self.channels = _fixed(shape[1])
        self.tile_zyx = tuple(_fixed(d) for d in shape[2:])
        self.classes = _fixed(out.shape[1])

    def run(self, tile):
        """The model's first output for one tile (C, [Z,] Y, X) -> (K, [Z,] Y, X) float32."""
        try:
            result = self.session().run([self.output_name],
                                        {self.input_name: tile[None].astype(self.input_dtype)})[0]
        except Exception as exc:  # a tile the model cannot take: onnxruntime's own classes
            detail = " ".join(str(exc).split()).replace("[ONNXRuntimeError] : ", "")
            raise UserError(f"{self.name} cannot run on a tile of {tuple(tile.shape)} (C, "
                            f"{'Z, ' if self.rank == 3 else ''}Y, X): {detail}") from None
        if result.shape[2:] != tile.shape[1:] or result.shape[0] != 1:
            raise UserError(f"{self.name} turns a tile of {tuple(tile.shape[1:])} voxels into "
                            f"an output of shape {tuple(result.shape)}; predict needs an output "
                            "of the input's spatial size (a dense segmentation model)")
        return result[0].astype(np.float32, copy=False)
