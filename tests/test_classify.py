"""`neurostation classify`: features computed box by box equal the whole-volume features (and
scipy / scikit-image's in memory); the forest trained on the annotated voxels equals
scikit-learn's trained in memory on the same voxels, classifies a two-phase volume well, and
a saved model reapplied gives the same result; unsafe or unfitting model files are refused."""

import os
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import skops.io
import tifffile
from scipy import ndimage
from skimage.feature import (hessian_matrix, hessian_matrix_eigvals, structure_tensor,
                             structure_tensor_eigenvalues)
from sklearn.ensemble import RandomForestClassifier
from test_ingest import read_with_tensorstore
from test_qc import write_ome
from test_scheduler import cluster  # noqa: F401 (the loopback Dask cluster fixture)

from neurostation.analysis.objects import inputs
from neurostation.chunks.boxes import Box, plan_boxes
from neurostation.cli import main
from neurostation.processing import classify as classify_mod
from neurostation.processing import features as features_mod
from neurostation.processing import filter as filter_image
from neurostation.processing.features import FeatureSet

VOXEL_UM = (0.5, 0.5, 1.0)  # x, y, z


class ArraySource:
    """An in-memory (x, y, z[, c]) array as a box source."""

    def __init__(self, xyz):
        self.array = xyz if xyz.ndim == 4 else xyz[..., None]
        self.shape, self.channels = self.array.shape[:3], self.array.shape[3]

    def read(self, box):
        return self.array[box.slices()]


@pytest.fixture
def small_boxes(monkeypatch):
    """Annotation boxes, output slabs and feature boxes of a thousand voxels or so: the
    40 x 36 x 20 test volumes span a few dozen."""
    monkeypatch.setattr(inputs, "BOX_VOXELS", 16 * 12 * 8)
    monkeypatch.setattr(filter_image, "BOX_BUDGET", 40 * 36 * 5)
    monkeypatch.setattr(features_mod, "FEATURE_BUDGET", 4 * 28 * 14 * 12 * 8)


def two_phase(seed, shape=(20, 36, 40)):
    """(image float32, truth 0/1) in z, y, x: bright balls of radius 2.5-4 on gaussian noise."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    truth = np.zeros(shape, bool)
    low = np.minimum((3, 4, 4), np.array(shape) / 2)
    for cz, cy, cx in rng.uniform(low, np.array(shape) - low, (12, 3)):
        r = rng.uniform(2.5, 4.0)
        truth |= (xx - cx) ** 2 + (yy - cy) ** 2 + (2 * (zz - cz)) ** 2 < (2 * r) ** 2
    image = (60.0 * truth + rng.normal(100, 20, shape)).astype(np.float32)
    return image, truth


def scribbles(truth, seed, density=0.03):
    """Sparse annotations: class 1 background, class 2 balls, on a random 3% of voxels."""
    picked = np.random.default_rng(seed).random(truth.shape) < density
    return (picked * np.where(truth, 2, 1)).astype(np.uint8)


@pytest.fixture
def volumes(tmp_path):
    image, truth = two_phase(1)
    other, other_truth = two_phase(2)
    paths = {"image": write_ome(tmp_path / "image.ome.tif", image, VOXEL_UM),
             "annotations": write_ome(tmp_path / "ann.ome.tif", scribbles(truth, 3), VOXEL_UM),
             "other": write_ome(tmp_path / "other.ome.tif", other, VOXEL_UM)}
    return paths, {"image": image, "truth": truth, "other": other, "other_truth": other_truth}


def xyz(zyx):
    return np.ascontiguousarray(zyx.transpose(2, 1, 0))


def whole_features(features, zyx):
    """The features of a whole (z, y, x) volume in one box, as (z, y, x, n)."""
    source = ArraySource(xyz(zyx))
    return features.of_box(source, Box((0, 0, 0), source.shape)).transpose(2, 1, 0, 3)


ALL = ("gaussian", "log", "gradient", "hessian", "structure")


@pytest.mark.parametrize("sigmas,spacing,planar,border", [
    ([(1, 1, 0.5), (2.5, 2.5, 1.25)], (1, 1, 2), False, "reflect"),  # physical, z 2x coarser
    ([(1.5, 1.5, 1.5)], (1, 1, 1), False, "nearest"),
    ([(1, 1, 0), (2, 2, 0)], (1, 1, 1), True, "mirror"),
])
def test_box_wise_features_equal_whole_volume_features(sigmas, spacing, planar, border):
    data = np.random.default_rng(0).normal(0, 1, (23, 19, 11, 2))
    data = ndimage.gaussian_filter(data, (1, 1, 1, 0)) * 100
    source = ArraySource(data)
    features = FeatureSet(ALL, sigmas, spacing, planar, border, 2)
    whole = features.of_box(source, Box((0, 0, 0), source.shape))
    assert whole.shape == source.shape + (len(features.names),)
    pieces = np.full_like(whole, np.nan)
    for box in plan_boxes(source.shape, (7, 5, 4)):  # 48 boxes, none dividing the volume
        pieces[box.slices()] = features.of_box(source, box)
    np.testing.assert_allclose(pieces, whole, rtol=1e-6, atol=1e-6 * np.abs(whole).max())


def test_features_equal_scipy_and_scikit_image():
    """Gaussian, LoG and gradient magnitude equal scipy's everywhere; hessian eigenvalues equal
    scikit-image's (computed as two first derivatives) and structure-tensor eigenvalues
    scikit-image's structure_tensor away from the border, where both define the same thing."""
    a = ndimage.gaussian_filter(np.random.default_rng(1).random((30, 26, 22)) * 100, 1)
    features = FeatureSet(ALL, [(2, 2, 2)], (1, 1, 1), False, "reflect", 1)
    f = features.of_box(ArraySource(a), Box((0, 0, 0), a.shape)).astype(np.float64)
    names = features.names
    col = {n.rsplit("_s", 1)[0].removeprefix("c0_"): i for i, n in enumerate(names)}

    def close(got, want, rtol, where=...):
        np.testing.assert_allclose(got[where], want[where], atol=rtol * np.ptp(want))

    close(f[..., col["intensity"]], a, 1e-6)
    close(f[..., col["gaussian"]], ndimage.gaussian_filter(a, 2), 1e-6)
    close(f[..., col["log"]], ndimage.gaussian_laplace(a, 2), 1e-6)
    close(f[..., col["gradient"]], ndimage.gaussian_gradient_magnitude(a, 2), 1e-6)
    inner = tuple(slice(h, n - h) for h, n in zip(features.halo, a.shape))
    hessian = hessian_matrix_eigvals(hessian_matrix(a, 2, mode="reflect",
                                                    use_gaussian_derivatives=True))
    structure = structure_tensor_eigenvalues(structure_tensor(a, 2, mode="reflect"))
    for i in range(3):
        close(f[..., col[f"hessian_{i + 1}"]], hessian[i], 5e-3, inner)  # discretisations differ
        close(f[..., col[f"structure_{i + 1}"]], structure[i], 1e-6, inner)


def reference_forest(image, annotations, features, trees, seed):
    """scikit-learn's forest fitted in memory on the annotated voxels (x fastest order)."""
    f = whole_features(features, image)
    picked = annotations > 0
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed)
    return forest.fit(f[picked], annotations[picked])


def predict(forest, features, image):
    f = whole_features(features, image)
    return forest.predict(f.reshape(-1, f.shape[-1])).reshape(image.shape)


def classify(*args):
    return main(["classify", *map(str, args)])


def refused(capsys, command, *args):
    """The one `error:` line (exit 2) of a refused in-process run of `command`."""
    capsys.readouterr()
    code = main([command, *map(str, args)])
    lines = [line for line in capsys.readouterr().err.splitlines()
             if not line.startswith("progress:")]
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def test_training_equals_scikit_learn_in_memory_and_classifies_well(tmp_path, volumes,
                                                                    small_boxes):
    paths, arrays = volumes
    out, model = tmp_path / "seg.ome.tif", tmp_path / "model.skops"
    assert classify(paths["image"], "--annotations", paths["annotations"], "--save-model",
                    model, "-o", out, "--sigmas", "0.5,1", "--unit", "um", "--trees", "25") == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZYX"
        seg = tif.asarray()
    assert seg.dtype == np.uint8 and set(np.unique(seg)) == {1, 2}
    accuracy = np.mean((seg == 2) == arrays["truth"])
    assert accuracy > 0.97, accuracy
    # sigmas 0.5 and 1 um: 1 and 2 voxels in x, y; 0.5 and 1 in z; derivatives per 0.5 um
    features = FeatureSet(ALL, [(1, 1, 0.5), (2, 2, 1)], (1, 1, 2), False, "reflect", 1)
    forest = reference_forest(arrays["image"], tifffile.imread(paths["annotations"]), features,
                              25, 0)
    np.testing.assert_array_equal(seg, predict(forest, features, arrays["image"]))
    # the saved model on a second volume: the same as the in-memory forest there
    again = tmp_path / "other_seg.ome.tif"
    assert classify(paths["other"], "--apply", model, "-o", again, "--jobs", "2") == 0
    other = tifffile.imread(again)
    np.testing.assert_array_equal(other, predict(forest, features, arrays["other"]))
    assert np.mean((other == 2) == arrays["other_truth"]) > 0.97
    # and on the training volume: the training run's result
    assert classify(paths["image"], "--apply", model, "-o", tmp_path / "same.ome.tif") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "same.ome.tif"), seg)


def test_probabilities_as_tiff_and_precomputed(tmp_path, volumes, small_boxes):
    paths, arrays = volumes
    common = ["--annotations", paths["annotations"], "--result", "probabilities",
              "--features", "gaussian,gradient", "--sigmas", "1,2", "--trees", "10", "--seed", "7"]
    assert classify(paths["image"], *common, "-o", tmp_path / "p.ome.tif") == 0
    assert classify(paths["image"], *common, "-o", tmp_path / "p", "--jobs", "2") == 0
    with tifffile.TiffFile(tmp_path / "p.ome.tif") as tif:
        assert tif.series[0].axes == "ZYXS"
        proba = tif.asarray()
    assert proba.shape == arrays["image"].shape + (2,) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=-1), 1, atol=1e-6)
    features = FeatureSet(("gaussian", "gradient"), [(1, 1, 1), (2, 2, 2)], (1, 1, 1), False,
                          "reflect", 1)
    forest = reference_forest(arrays["image"], tifffile.imread(paths["annotations"]), features,
                              10, 7)
    f = whole_features(features, arrays["image"])
    want = forest.predict_proba(f.reshape(-1, f.shape[-1])).reshape(proba.shape)
    np.testing.assert_allclose(proba, want, atol=1e-6)
    stored = read_with_tensorstore(tmp_path / "p")  # x, y, z, c
    np.testing.assert_array_equal(stored, proba.transpose(2, 1, 0, 3))


def test_planar_features_of_a_single_plane(tmp_path):
    image, truth = two_phase(4, shape=(1, 60, 64))
    paths = [write_ome(tmp_path / "i.ome.tif", image, VOXEL_UM),
             write_ome(tmp_path / "a.ome.tif", scribbles(truth, 5, 0.05), VOXEL_UM)]
    assert classify(paths[0], "--annotations", paths[1], "-o", tmp_path / "s.ome.tif",
                    "--save-model", tmp_path / "m.skops", "--trees", "20") == 0
    seg = tifffile.imread(tmp_path / "s.ome.tif")
    assert np.mean((seg == 2) == truth[0]) > 0.95
    settings = skops.io.load(tmp_path / "m.skops", trusted=["sklearn.tree._tree.Tree"])["settings"]
    assert settings["planar"] is True and settings["classes"] == [1, 2]
    assert len(settings["kinds"]) == 5 and settings["sigmas"] == [1.0, 2.0, 4.0]


@pytest.fixture
def trained(tmp_path, volumes):
    paths, _ = volumes
    model = tmp_path / "model.skops"
    assert classify(paths["image"], "--annotations", paths["annotations"], "--save-model", model,
                    "-o", tmp_path / "seg.ome.tif", "--sigmas", "1", "--trees", "5") == 0
    return paths, model


def apply_error(capsys, tmp_path, image, model):
    out = tmp_path / "applied.ome.tif"
    line = refused(capsys, "classify", image, "--apply", model, "-o", out)
    assert not out.exists()
    return line


def test_unsafe_and_foreign_model_files_are_refused(tmp_path, capsys, trained):
    paths, model = trained
    evil = tmp_path / "evil.skops"
    skops.io.dump({"format": "neurostation-model-1", "model": os.system}, evil)
    assert apply_error(capsys, tmp_path, paths["image"], evil) == (
        "error: evil.skops is not safe to load: it holds types outside the allow-list "
        "(posix.system)")
    pickled = tmp_path / "pickled.skops"
    pickled.write_bytes(pickle.dumps({"format": "neurostation-model-1"}))
    assert apply_error(capsys, tmp_path, paths["image"], pickled).startswith(
        "error: pickled.skops is not a NeuroStation model file (a skops archive)")
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    assert "notes.txt is not a NeuroStation model file" in apply_error(capsys, tmp_path,
                                                                      paths["image"], text)
    bare = tmp_path / "bare.skops"
    skops.io.dump(RandomForestClassifier(n_estimators=2).fit([[0], [1]], [1, 2]), bare)
    assert apply_error(capsys, tmp_path, paths["image"], bare) == (
        "error: bare.skops is not a NeuroStation model file")


def test_model_for_other_images_is_refused(tmp_path, capsys, trained):
    paths, model = trained
    two = tmp_path / "two.tif"
    tifffile.imwrite(two, np.stack([tifffile.imread(paths["image"])] * 2, axis=-1),
                     photometric="minisblack", planarconfig="contig", metadata={"axes": "ZYXS"})
    assert apply_error(capsys, tmp_path, two, model) == (
        "error: the model model.skops takes 10 features but this input gives 20 (2 channel(s) "
        "x the model's feature settings): it was trained on another kind of image")


@pytest.mark.parametrize("case,message", [
    ("one class", "error: the annotations ann.ome.tif hold only class 1; training needs at "
                  "least two classes (label values > 0)"),
    ("shape", "error: the annotations ann.ome.tif are 40x36x19 voxels but image.ome.tif is "
              "40x36x20 (x, y, z): they must have the same shape"),
    ("float", "error: ann.ome.tif holds float32 values; a label volume holds integers"),
])
def test_bad_annotations_are_refused(tmp_path, capsys, volumes, case, message):
    paths, arrays = volumes
    ann = tifffile.imread(paths["annotations"])
    ann = {"one class": np.minimum(ann, 1), "shape": ann[:19],
           "float": ann.astype(np.float32)}[case]
    write_ome(paths["annotations"], ann, VOXEL_UM)
    out = tmp_path / "seg.ome.tif"
    line = refused(capsys, "classify", paths["image"], "--annotations", paths["annotations"],
                   "-o", out, "--save-model", tmp_path / "m.skops")
    assert line.startswith(message)
    assert not out.exists() and not (tmp_path / "m.skops").exists()


@pytest.mark.parametrize("options,message", [
    (["--sigmas", "1,-2"], "--sigmas must be positive numbers separated by commas"),
    (["--features", "gaussian,wavelet"], "--features takes kinds from gaussian, log"),
    (["--trees", "0"], "--trees must be 1 or more, got 0"),
    (["--unit", "um", "--apply", "m.skops"], "argument --apply: not allowed with argument"),
])
def test_bad_options_are_refused(tmp_path, capsys, volumes, options, message):
    paths, _ = volumes
    line = refused(capsys, "classify", paths["image"], "--annotations", paths["annotations"],
                   "-o", tmp_path / "seg.ome.tif", *options)
    assert message in line


def test_feature_options_with_apply_are_refused(tmp_path, capsys, trained):
    paths, model = trained
    line = refused(capsys, "classify", paths["image"], "--apply", model, "--sigmas", "2",
                   "-o", tmp_path / "x.ome.tif")
    assert line == ("error: --sigmas applies to training; with --apply the features come from "
                    "the model file")


def test_model_with_invalid_settings_or_huge_sigmas_is_refused(tmp_path, capsys, trained):
    paths, model = trained
    content = skops.io.load(model, trusted=["sklearn.tree._tree.Tree"])
    content["settings"]["unit"] = "parsec"
    odd = tmp_path / "odd.skops"
    skops.io.dump(content, odd)
    assert apply_error(capsys, tmp_path, paths["image"], odd) == (
        "error: the model odd.skops holds invalid feature settings; train it again")
    line = refused(capsys, "classify", paths["image"], "--annotations", paths["annotations"],
                   "--sigmas", "40", "-o", tmp_path / "s.ome.tif")
    assert line == ("error: the largest sigma reaches 161 voxels around each voxel (4 sigma); "
                    "at most 128 are supported: use smaller sigmas")


def test_physical_sigmas_follow_each_volume_voxel_size():
    """A model's sigmas in um become voxels with the voxel size of the volume it is applied to."""
    settings = {"kinds": ["gaussian"], "sigmas": [1.0], "unit": "um", "planar": False,
                "border": "reflect"}
    fine = classify_mod.feature_set(settings, SimpleNamespace(voxel_nm=(250.0, 250.0, 1000.0),
                                                              channels=1))
    coarse = classify_mod.feature_set(settings, SimpleNamespace(voxel_nm=(500.0, 500.0, 500.0),
                                                                channels=1))
    assert fine.sigmas == [(4.0, 4.0, 1.0)] and fine.spacing == (1.0, 1.0, 4.0)
    assert coarse.sigmas == [(2.0, 2.0, 2.0)] and coarse.spacing == (1.0, 1.0, 1.0)


def test_on_a_dask_cluster_equals_local(tmp_path, volumes, small_boxes, cluster,  # noqa: F811
                                        monkeypatch):
    """Gathering and classifying as box tasks on Dask workers (which load the model file
    themselves from the temporary folder) give the local run's segmentation; so does applying a
    saved model named relative to our folder (the workers run in another)."""
    paths, _ = volumes
    monkeypatch.chdir(tmp_path)
    common = [paths["image"], "--annotations", paths["annotations"], "--sigmas", "1,2",
              "--trees", "8"]
    assert classify(*common, "-o", "local.ome.tif", "--save-model", "model.skops") == 0
    assert classify(*common, "-o", "dask.ome.tif", "--scheduler", cluster[0]) == 0
    assert classify(paths["image"], "--apply", "model.skops", "-o", "applied.ome.tif",
                    "--scheduler", cluster[0]) == 0
    local = tifffile.imread("local.ome.tif")
    np.testing.assert_array_equal(tifffile.imread("dask.ome.tif"), local)
    np.testing.assert_array_equal(tifffile.imread("applied.ome.tif"), local)


def test_max_samples_takes_an_even_subset(tmp_path, capsys, volumes):
    """The hashed subset keeps about the asked share of the annotated voxels, whatever boxes
    they come in (a voxel's fate depends on its index and the seed only)."""
    index = np.arange(200000)
    kept = classify_mod._keep(index, 5, 0.25)
    assert abs(kept.mean() - 0.25) < 0.005
    np.testing.assert_array_equal(np.concatenate([classify_mod._keep(part, 5, 0.25)
                                                  for part in np.array_split(index, 7)]), kept)
    paths, arrays = volumes
    capsys.readouterr()
    assert classify(paths["image"], "--annotations", paths["annotations"], "--max-samples", "300",
                    "--trees", "5", "--sigmas", "1", "-o", tmp_path / "s.ome.tif") == 0
    used = int(capsys.readouterr().err.split("training on ")[1].split()[0])
    assert 250 < used < 350
    seg = tifffile.imread(tmp_path / "s.ome.tif")
    assert np.mean((seg == 2) == arrays["truth"]) > 0.95
