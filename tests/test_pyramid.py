"""The pyramid written in the same pass: every scale equals tinybrain on the whole volume in
memory, read back with TensorStore; labels by mode; slices, zips, resumption, parallel jobs."""

import json
import zipfile

import numpy as np
import pytest
import tifffile
import tinybrain
from skimage.measure import block_reduce

from neurostation.chunks.journal import FOLDER
from test_ingest import read_with_tensorstore


def reference_pyramid(volume, factors, layer_type):
    """Whole-volume, in-memory pyramid (x, y, z, c): scikit-image block means (rounded down)
    for images, tinybrain's COUNTLESS mode for labels; odd edges repeat the last voxel."""
    levels = [volume]
    for factor in factors:
        prev = levels[-1]
        pad = [(0, -n % f) for n, f in zip(prev.shape[:3], factor)] + [(0, 0)]
        prev = np.pad(prev, pad, mode="edge")
        if layer_type == "segmentation":
            levels.append(tinybrain.downsample_segmentation(np.asfortranarray(prev), factor,
                                                            num_mips=1, sparse=False)[0])
        else:
            mean = block_reduce(prev.astype(np.float64), tuple(factor) + (1,), np.mean)
            levels.append(np.floor(mean + 1e-9).astype(volume.dtype))
    return levels


def scale_factors(out):
    scales = json.loads((out / "info").read_text())["scales"]
    res = [np.array(s["resolution"]) for s in scales]
    return [tuple(int(v) for v in b / a) for a, b in zip(res, res[1:])], scales


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_image_pyramid_equals_in_memory_reference(tmp_path, cli, jobs, monkeypatch):
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 255, size=(40, 150, 200), dtype=np.uint8)  # z, y, x
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, stack, metadata={"axes": "ZYX"})
    out = tmp_path / "vol"
    result = cli("ingest", src, "-o", out, "--chunk-size", "16,16,8", "--voxel-size", "4,4,40",
                 "--jobs", jobs)
    assert result.returncode == 0, result.stderr
    factors, scales = scale_factors(out)
    assert factors[0] == (2, 2, 1)  # anisotropic: x and y only
    assert scales[-1]["size"][0] <= 16 and scales[-1]["size"][1] <= 16
    volume = stack.transpose(2, 1, 0)[..., None]
    for i, expected in enumerate(reference_pyramid(volume, factors, "image")):
        np.testing.assert_array_equal(read_with_tensorstore(out, i), expected, err_msg=f"scale {i}")
    assert not (out / FOLDER).exists()


def test_isotropic_labels_mode_pyramid(tmp_path, cli):
    labels = np.zeros((48, 48, 48), np.uint32)
    labels[5:30, 5:40, 10:20] = 7
    labels[20:45, 30:47, 25:47] = 123456
    labels[::3, ::5, ::7] = 9  # speckle the mode must vote away
    src = tmp_path / "labels.tif"
    tifffile.imwrite(src, labels, metadata={"axes": "ZYX"})
    out = tmp_path / "vol"
    result = cli("ingest", src, "-o", out, "--chunk-size", "8,8,8", "--voxel-size", "1,1,1",
                 "--layer-type", "segmentation", "--encoding", "compressed_segmentation")
    assert result.returncode == 0, result.stderr
    factors, _ = scale_factors(out)
    assert factors[0] == (2, 2, 2)
    volume = labels.transpose(2, 1, 0)[..., None]
    for i, expected in enumerate(reference_pyramid(volume, factors, "segmentation")):
        np.testing.assert_array_equal(read_with_tensorstore(out, i), expected, err_msg=f"scale {i}")


def test_jpeg_within_stated_error(tmp_path, cli):
    y, x = np.mgrid[0:128, 0:128]
    stack = np.stack([((x + y + 8 * z) % 256).astype(np.uint8) for z in range(16)])
    stack = (np.sin(stack / 40.0) * 100 + 120).astype(np.uint8)  # smooth, like tissue
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, metadata={"axes": "ZYX"})
    out = tmp_path / "vol"
    assert cli("ingest", src, "-o", out, "--encoding", "jpeg", "--voxel-size", "1,1,1").returncode == 0
    got = read_with_tensorstore(out)[..., 0].astype(float)
    error = np.abs(got - stack.transpose(2, 1, 0))
    assert error.mean() < 2.0 and error.max() < 40  # the README states: mean abs error < 2 grey levels


def test_slices_sorted_naturally_with_names(tmp_path, cli):
    planes = [np.full((20, 30), z * 10, np.uint16) for z in range(12)]
    paths, names = [], []
    for z, plane in enumerate(planes):
        path = tmp_path / f"dataset_{100 - z}.dat"  # Galaxy's file names say nothing
        tifffile.imwrite(path, plane, metadata={"axes": "YX"})
        paths.append(path)
        names.append(f"slice_{z}.tif")
    order = [5, 11, 0, 3, 10, 1, 2, 9, 4, 8, 7, 6]  # Galaxy's element order is not natural
    out = tmp_path / "vol"
    result = cli("ingest", *[paths[i] for i in order], "--names", *[names[i] for i in order],
                 "-o", out, "--voxel-size", "1,1,1")
    assert result.returncode == 0, result.stderr
    got = read_with_tensorstore(out)[..., 0]
    assert [int(got[0, 0, z]) for z in range(12)] == [z * 10 for z in range(12)]


def test_zip_of_slices_and_folder(tmp_path, cli):
    archive = tmp_path / "slices.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for z in (2, 10, 1):
            buf = tmp_path / f"s{z}.tif"
            tifffile.imwrite(buf, np.full((8, 9), z, np.uint8), metadata={"axes": "YX"})
            zf.write(buf, f"stack/s{z}.tif")
    out = tmp_path / "vol"
    assert cli("ingest", archive, "-o", out, "--voxel-size", "1,1,1").returncode == 0
    assert read_with_tensorstore(out)[0, 0, :, 0].tolist() == [1, 2, 10]


def _error(result):
    assert result.returncode == 2, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_zip_escaping_the_folder(tmp_path, cli):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.tif", b"II*\x00")
    message = _error(cli("ingest", archive, "-o", tmp_path / "v"))
    assert message == "error: zip entry '../../escape.tif' points outside the archive's folder; refusing to extract it"
    assert not (tmp_path.parent / "escape.tif").exists()


def test_slices_of_different_shapes(tmp_path, cli):
    a, b = tmp_path / "a1.tif", tmp_path / "a2.tif"
    tifffile.imwrite(a, np.zeros((8, 8), np.uint8), metadata={"axes": "YX"})
    tifffile.imwrite(b, np.zeros((8, 9), np.uint8), metadata={"axes": "YX"})
    message = _error(cli("ingest", a, b, "-o", tmp_path / "v"))
    assert message == ("error: slice a2.tif is 8x9 uint8 but a1.tif is 8x8 uint8: all slices "
                       "must have the same shape and data type")


def test_slices_of_different_dtypes(tmp_path, cli):
    a, b = tmp_path / "a1.tif", tmp_path / "a2.tif"
    tifffile.imwrite(a, np.zeros((8, 8), np.uint8), metadata={"axes": "YX"})
    tifffile.imwrite(b, np.zeros((8, 8), np.uint16), metadata={"axes": "YX"})
    assert "a2.tif is 8x8 uint16 but a1.tif is 8x8 uint8" in _error(cli("ingest", a, b, "-o", tmp_path / "v"))


def test_empty_folder(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    assert _error(cli("ingest", tmp_path / "empty", "-o", tmp_path / "v")).endswith("holds no images")


def test_jpeg_refused_for_uint16(tmp_path, cli, data):
    message = _error(cli("ingest", data("stack_imagej.tif"), "-o", tmp_path / "v", "--encoding", "jpeg"))
    assert message.startswith("error: jpeg encoding takes uint8 images")


class _Crashing:
    """A source that fails after `limit` box reads, like a job killed mid-way."""

    def __init__(self, source, limit):
        self.source, self.limit, self.reads = source, limit, 0

    def __getattr__(self, name):
        return getattr(self.source, name)

    def read(self, box):
        self.reads += 1
        if self.reads > self.limit:
            raise KeyboardInterrupt("killed")
        return self.source.read(box)


def test_interrupted_run_resumes_to_identical_volume(tmp_path, monkeypatch):
    from neurostation.cli import main
    from neurostation.io import sources

    rng = np.random.default_rng(2)
    stack = rng.integers(0, 60000, size=(24, 64, 300), dtype=np.uint16)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, metadata={"axes": "ZYX"})
    args = ["--chunk-size", "16,16,8", "--voxel-size", "1,1,8", "--jobs", "1"]
    # A small budget: boxes of 64x64x8 and a second pass for the coarser scales.
    monkeypatch.setattr("neurostation.storage.write.BOX_BUDGET", 64 * 64 * 8 * 2)
    opened = sources.open_source
    made = []

    def ingest(out, limit):
        def open_limited(*a, **k):
            made.append(_Crashing(opened(*a, **k), limit))
            return made[-1]

        monkeypatch.setattr("neurostation.ingest.volume.open_source", open_limited)
        return main(["ingest", str(src), "-o", str(out), *args])

    full, part = tmp_path / "full", tmp_path / "part"
    assert ingest(full, limit=10**6) == 0
    total = made[-1].reads
    assert total >= 4
    assert ingest(part, limit=2) == 130  # interrupted, as by Ctrl-C or a killed job
    assert not (part / "neurostation.json").exists()  # never mistaken for complete
    assert len(list((part / FOLDER / "done").iterdir())) == 2
    assert ingest(part, limit=10**6) == 0
    assert made[-1].reads == total - 2  # the two boxes written before the crash were skipped
    for scale in range(len(json.loads((full / "info").read_text())["scales"])):
        np.testing.assert_array_equal(read_with_tensorstore(part, scale), read_with_tensorstore(full, scale))
    assert json.loads((part / "neurostation.json").read_text())["complete"] is True
    assert not (part / FOLDER).exists()
