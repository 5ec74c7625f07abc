"""`neurostation classify`: pixel classification with a random forest on multi-scale features
(features.py), trained on sparse annotations or applied from a saved model file.

Training gathers the features of the annotated voxels only, box by box, in the order of the
voxels in the volume (x fastest), so the forest does not depend on the box plan or --jobs.
Prediction runs box by box with the features' halo; the model travels to the worker processes
as its file path and is loaded there through the safe loader (io/model_files.py).
"""

import functools
import os
import shutil
import sys

import numpy as np

from ..analysis.objects.inputs import label_boxes, open_labels, read_labels
from ..chunks.pool import add_parallel_arguments, resolve_jobs, run_tasks
from ..errors import UserError
from ..io.model_files import load_model, save_model
from ..io.outputs import add_volume_options, check_tiff_options, output_format
from ..io.precomputed import SEGMENTATION_ENCODINGS
from ..io.sources import workdir
from ..units import UNIT_NM
from ..visualize.sources import open_volume_source
from .features import KINDS, FeatureSet, sub_boxes
from .filter import BORDER_MODES, add_input_output, sigma_voxels, write_precomputed, write_tiff

RESULTS = ("segmentation", "probabilities")
MODEL_KIND = "pixel classifier"
DEFAULT_SIGMAS = "1,2,4"
# Options that describe the features: taken from the model file with --apply.
FEATURE_OPTIONS = ("features", "sigmas", "unit", "planar", "border")
MAX_HALO = 128  # voxels a feature reaches at most (about sigma 32)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "classify", help="classify voxels with a random forest on multi-scale features",
        description="Pixel classification: per voxel, the intensity and at each sigma a gaussian, "
        "laplacian of gaussian, gradient magnitude, hessian eigenvalues and structure-tensor "
        "eigenvalues (sigmas in voxels or a physical unit, so anisotropic voxels get their own "
        "per-axis sigma); a scikit-learn random forest trained on sparse annotations (a label "
        "image on the same grid: 0 = unlabelled, each other value a class) or loaded from a "
        "model file (--apply). Features are computed box by box with the halo they reach, "
        "equal to the whole-volume features. Writes the segmentation (the winning class's "
        "annotation value per voxel) or the class probabilities (float32, one channel per "
        "class in increasing class order), as a TIFF or a precomputed volume.",
        epilog="example: neurostation classify volume.ome.tif --annotations scribbles.ome.tif "
        "--save-model cells.skops -o classes.ome.tif; then neurostation classify other.ome.tif "
        "--apply cells.skops -o other_classes.ome.tif")
    add_input_output(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--annotations", metavar="LABELS",
                      help="train on this label image (integers; 0 = unlabelled, >0 = class)")
    mode.add_argument("--apply", metavar="MODEL", help="classify with a saved model file")
    p.add_argument("--save-model", metavar="MODEL",
                   help="training: write the model (skops file, with the feature settings) here")
    p.add_argument("--result", choices=RESULTS, default="segmentation",
                   help="segmentation (class per voxel, default) or probabilities (a channel "
                   "per class)")
    p.add_argument("--features", help="training: comma-separated kinds from "
                   f"{','.join(KINDS)} (default: all); the intensity is always a feature")
    p.add_argument("--sigmas", help=f"training: comma-separated sigmas in --unit (default "
                   f"{DEFAULT_SIGMAS})")
    p.add_argument("--unit", choices=["voxel"] + sorted(UNIT_NM),
                   help="training: unit of the sigmas (default voxel; a physical unit is "
                   "divided by each axis' voxel size)")
    p.add_argument("--2d", dest="planar", action="store_const", const=True,
                   help="training: features of each xy plane on its own (automatic for a "
                   "single plane)")
    p.add_argument("--border", choices=tuple(BORDER_MODES),
                   help="training: values beyond the volume's border (default reflect)")
    p.add_argument("--trees", type=int, default=100, help="trees in the forest (default 100)")
    p.add_argument("--max-depth", type=int, help="depth limit of the trees (default none)")
    p.add_argument("--max-samples", type=int, default=500000,
                   help="annotated voxels used at most; beyond it an even random subset "
                   "(default 500000)")
    p.add_argument("--seed", type=int, default=0, help="random state of the forest (default 0)")
    add_volume_options(p, SEGMENTATION_ENCODINGS)
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="segmentation")
    return p


def feature_settings(args, source):
    """The feature settings of a training run, checked (stored in the model file)."""
    kinds = [k.strip() for k in (args.features or ",".join(KINDS)).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UserError(f"--features takes kinds from {', '.join(KINDS)}, got {args.features!r}")
    try:
        sigmas = [float(s) for s in (args.sigmas or DEFAULT_SIGMAS).split(",")]
    except ValueError:
        sigmas = []
    if not sigmas or not all(s > 0 for s in sigmas):
        raise UserError(f"--sigmas must be positive numbers separated by commas, got "
                        f"{args.sigmas!r}")
    return {"kinds": kinds, "sigmas": sigmas, "unit": args.unit or "voxel",
            "planar": bool(args.planar) or source.shape[2] == 1,
            "border": args.border or "reflect", "channels": source.channels}


def check_settings(settings, name):
    """Refuse a model file whose feature settings are not ones a training run writes."""
    def numbers(values, kind):
        return isinstance(values, list) and values and all(
            isinstance(v, kind) and not isinstance(v, bool) and v > 0 for v in values)

    if not (isinstance(settings.get("kinds"), list) and settings["kinds"]
            and set(settings["kinds"]) <= set(KINDS) and numbers(settings.get("sigmas"), float)
            and settings.get("unit") in ("voxel", *UNIT_NM)
            and isinstance(settings.get("planar"), bool) and settings.get("border") in BORDER_MODES
            and numbers(settings.get("classes"), int)):
        raise UserError(f"the model {name} holds invalid feature settings; train it again")


def feature_set(settings, source):
    """The FeatureSet of `settings` on `source` (sigmas converted with its voxel size); a
    sigma reaching further than MAX_HALO voxels is refused."""
    unit, voxel_nm = settings["unit"], source.voxel_nm
    sigmas = [sigma_voxels(s, unit, voxel_nm, settings["planar"], "--sigmas")
              for s in settings["sigmas"]]
    spacing = (1.0, 1.0, 1.0) if unit == "voxel" else tuple(v / min(voxel_nm) for v in voxel_nm)
    features = FeatureSet(settings["kinds"], sigmas, spacing, settings["planar"],
                          settings["border"], source.channels)
    if max(features.halo) > MAX_HALO:
        raise UserError(f"the largest sigma reaches {max(features.halo)} voxels around each "
                        f"voxel (4 sigma); at most {MAX_HALO} are supported: use smaller sigmas")
    return features


def check_training_options(args):
    if args.seed < 0:
        raise UserError(f"--seed must be 0 or more, got {args.seed}")
    if args.trees < 1:
        raise UserError(f"--trees must be 1 or more, got {args.trees}")
    if args.max_depth is not None and args.max_depth < 1:
        raise UserError(f"--max-depth must be 1 or more, got {args.max_depth}")
    if args.max_samples < 2:
        raise UserError(f"--max-samples must be 2 or more, got {args.max_samples}")


def check_apply_options(args):
    given = [o for o in FEATURE_OPTIONS if getattr(args, o) is not None]
    if args.save_model or given:
        option = "--save-model" if args.save_model else "--" + given[0].replace("planar", "2d")
        raise UserError(f"{option} applies to training; with --apply the features come from "
                        "the model file")


def _class_counts(annotations, box):
    values, counts = np.unique(read_labels(annotations, box), return_counts=True)
    keep = values > 0
    return box, dict(zip(values[keep].tolist(), counts[keep].tolist()))


def annotated_classes(annotations, jobs):
    """({class value: annotated voxels}, boxes holding annotations); fewer than two classes
    is refused."""
    counts, boxes = {}, []
    for box, found in run_tasks(functools.partial(_class_counts, annotations),
                                label_boxes(annotations), jobs=jobs, desc="reading annotations"):
        if found:
            boxes.append(box)
        for value, n in found.items():
            counts[value] = counts.get(value, 0) + n
    if len(counts) < 2:
        got = f"only class {next(iter(counts))}" if counts else "no annotated voxel"
        raise UserError(f"the annotations {annotations.name} hold {got}; training needs at "
                        "least two classes (label values > 0)")
    return dict(sorted(counts.items())), boxes


def _keep(index, seed, fraction):
    """An even pseudo-random subset of voxel indices (a fixed hash, independent of boxes)."""
    if fraction >= 1:
        return np.ones(index.shape, bool)
    h = (index.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF)) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


class Gather:
    """(voxel indices, features, classes) of the annotated voxels of a box; picklable."""

    def __init__(self, source, annotations, features, seed, fraction):
        self.source, self.annotations, self.features = source, annotations, features
        self.seed, self.fraction = seed, fraction

    def __call__(self, box):
        parts = []
        for sub in sub_boxes(self.features, box):
            classes = read_labels(self.annotations, sub)
            x, y, z = np.nonzero(classes)
            index = x + sub.start[0] + self.source.shape[0] * (
                y + sub.start[1] + self.source.shape[1] * (z + sub.start[2]))
            keep = _keep(index, self.seed, self.fraction)
            if keep.any():
                x, y, z, index = x[keep], y[keep], z[keep], index[keep]
                feats = self.features.of_box(self.source, sub)[x, y, z]
                parts.append((index, feats, classes[x, y, z]))
        return parts


def gather(source, annotations, features, boxes, counts, args, jobs):
    """Features (n, f) and classes (n,) of the annotated voxels, in voxel order."""
    fraction = min(1.0, args.max_samples / sum(counts.values()))
    parts = [part for found in run_tasks(Gather(source, annotations, features, args.seed,
                                                fraction), boxes, jobs=jobs,
                                         desc="gathering features")
             for part in found]
    index = np.concatenate([p[0] for p in parts])
    order = np.argsort(index, kind="stable")
    return (np.concatenate([p[1] for p in parts])[order],
            np.concatenate([p[2] for p in parts])[order])


def train(source, annotations, settings, args, jobs):
    """A fitted RandomForestClassifier on the annotated voxels' features."""
    from sklearn.ensemble import RandomForestClassifier

    counts, boxes = annotated_classes(annotations, jobs)
    features = feature_set(settings, source)
    x, y = gather(source, annotations, features, boxes, counts, args, jobs)
    if len(np.unique(y)) < 2:
        raise UserError(f"--max-samples {args.max_samples} leaves annotated voxels of one class "
                        "only; give a larger --max-samples")
    print(f"training on {len(y)} annotated voxels of {len(counts)} classes "
          f"({', '.join(f'{c}: {n}' for c, n in counts.items())}), {x.shape[1]} features",
          file=sys.stderr)
    forest = RandomForestClassifier(n_estimators=args.trees, max_depth=args.max_depth,
                                    random_state=args.seed, n_jobs=jobs)
    return forest.fit(x, y)


_LOADED = {}


def loaded_model(path):
    """The model of a file, loaded (safely) once per process and file version, for one core
    per process (long-lived workers may see a file replaced under the same name)."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        model, _ = load_model(path, MODEL_KIND)
        model.n_jobs = 1
        _LOADED.clear()
        _LOADED[key] = model
    return _LOADED[key]


class Classified:
    """A lazy volume of class probabilities or labels: read(box) computes the features of the
    box (in budget-sized parts) and runs the model file's forest on them; picklable."""

    def __init__(self, source, features, model_path, classes, result):
        self.source, self.features, self.model_path = source, features, model_path
        self.result, self.classes = result, np.asarray(classes)
        self.shape = tuple(source.shape)
        if result == "probabilities":
            self.channels, self.dtype = len(classes), np.dtype(np.float32)
        else:
            self.channels = 1
            self.dtype = np.min_scalar_type(int(self.classes.max()))

    def read(self, box):
        model = loaded_model(self.model_path)
        out = np.empty(box.shape + (self.channels,), self.dtype, order="F")
        for sub in sub_boxes(self.features, box):
            feats = self.features.of_box(self.source, sub)
            proba = model.predict_proba(feats.reshape(-1, feats.shape[-1]))
            if self.result == "probabilities":
                values = proba.astype(np.float32).reshape(sub.shape + (self.channels,))
            else:
                values = self.classes[np.argmax(proba, axis=1)].reshape(sub.shape + (1,))
            out[tuple(slice(a - o, b - o)
                      for a, b, o in zip(sub.start, sub.stop, box.start))] = values
        return out


def check_model(model, settings, features, name):
    """Refuse a model whose feature count or classes do not fit the features of this input."""
    if model.n_features_in_ != len(features.names):
        raise UserError(f"the model {name} takes {model.n_features_in_} features but this input "
                        f"gives {len(features.names)} ({features.channels} channel(s) x the "
                        "model's feature settings): it was trained on another kind of image")
    classes = [int(c) for c in model.classes_]
    if classes != list(settings.get("classes", [])) or min(classes) < 1:
        raise UserError(f"the model {name} has inconsistent classes; train it again")


def run(args):
    check_tiff_options(args)
    (check_apply_options if args.apply else check_training_options)(args)
    kind, jobs, tmp = output_format(args), resolve_jobs(args.jobs), workdir()
    try:
        source = open_volume_source(args.input, tmp, mip=args.mip)
        if args.apply:
            model_path = args.apply
            model, settings = load_model(model_path, MODEL_KIND)
            check_settings(settings, os.path.basename(model_path))
        else:
            annotations = open_labels(args.annotations, tmp)
            if annotations.shape != source.shape:
                raise UserError(
                    f"the annotations {annotations.name} are "
                    f"{'x'.join(map(str, annotations.shape))} voxels but {source.name} is "
                    f"{'x'.join(map(str, source.shape))} (x, y, z): they must have the same shape")
            settings = feature_settings(args, source)
            model = train(source, annotations, settings, args, jobs)
            settings["classes"] = [int(c) for c in model.classes_]
            model_path = args.save_model or f"{tmp}/model.skops"
            save_model(model_path, MODEL_KIND, model, settings)
        features = feature_set(settings, source)
        check_model(model, settings, features, os.path.basename(model_path))
        # absolute: Dask workers load the model themselves, in a working folder not ours
        volume = Classified(source, features, os.path.abspath(model_path), settings["classes"],
                            args.result)
        if kind == "tiff":
            write_tiff(args.output, volume, source.voxel_nm, jobs, desc="classifying")
        else:
            args.layer_type = "segmentation" if args.result == "segmentation" else "image"
            write_precomputed(volume, source, args, jobs,
                              {"command": "classify", "result": args.result,
                               "classes": settings["classes"]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"classified {source.name} into {len(settings['classes'])} classes "
          f"({', '.join(map(str, settings['classes']))}) -> {args.result}", file=sys.stderr)
