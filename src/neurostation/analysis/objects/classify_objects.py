"""`neurostation classify-objects`: classify the objects of a label volume from their row in
the `measure` table with a random forest (trained on a few labelled objects, or a saved model
file), drop the objects of an exclusion list (manual QC) and optionally all but one class, and
write the filtered label volume (dropped objects set to 0, box by box) and table."""

import os
import shutil
import sys

import numpy as np
import pandas as pd

from ...chunks.pool import add_parallel_arguments, resolve_jobs
from ...errors import UserError
from ...io.model_files import load_model, save_model
from ...io.outputs import add_volume_options, check_tiff_options, output_format
from ...io.precomputed import SEGMENTATION_ENCODINGS
from ...io.sources import workdir
from ...processing.filter import write_precomputed, write_tiff
from ..fmri.tables import read_tsv, to_numbers, write_frame
from .inputs import open_labels, read_labels

MODEL_KIND = "object classifier"
# measure's columns that say where an object is, not what it is: not features by default.
POSITION_PREFIXES = ("centroid_", "bbox_")
NOT_FEATURES = ("sample", "label")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "classify-objects", help="classify objects from their measurements, drop excluded ones",
        description="Classify the objects of a label volume from their measurements (the table "
        "of `neurostation measure`) with a scikit-learn random forest trained on a few labelled "
        "objects (--training: a TSV with columns label and class) or loaded from a model file "
        "(--apply; the skops file --save-model writes, checked against an allow-list of types "
        "before loading). Objects named in --exclude (manual QC) are dropped, and with "
        "--keep-class every object of another class too: the label volume is written with "
        "dropped objects set to 0, the table with the kept objects and a class column.",
        epilog="example: neurostation classify-objects cells.ome.tif --table objects.tsv "
        "--training some_cells.tsv --exclude bad_cells.txt --keep-class neuron "
        "-o neurons.ome.tif --table-out neurons.tsv --save-model neurons.skops")
    p.add_argument("input", help="label volume: TIFF/OME-TIFF, NIfTI, precomputed folder, URL "
                   "or JSON reference")
    p.add_argument("--table", required=True, help="the object table of `measure` (TSV)")
    p.add_argument("-o", "--output", required=True,
                   help="filtered labels: a .tif/.tiff file, or a folder/URL (precomputed)")
    p.add_argument("--format", choices=("tiff", "precomputed"),
                   help="output format (default: tiff for a .tif/.tiff name, else precomputed)")
    p.add_argument("--table-out", required=True, metavar="TSV",
                   help="the kept objects' rows, with class and class_probability columns")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--training", metavar="TSV",
                      help="labelled objects: a TSV with columns label and class (2+ classes)")
    mode.add_argument("--apply", metavar="MODEL", help="classify with a saved model file")
    p.add_argument("--save-model", metavar="MODEL", help="training: write the model here")
    p.add_argument("--columns", help="training: comma-separated feature columns (default: every "
                   "numeric column but label and the centroid_/bbox_ positions)")
    p.add_argument("--exclude", metavar="FILE",
                   help="object ids to drop, one per line (a header line 'label' is allowed)")
    p.add_argument("--keep-class", metavar="CLASS", help="keep only the objects of this class")
    p.add_argument("--sample", help="the table's sample to use when it holds several")
    p.add_argument("--trees", type=int, default=100, help="trees in the forest (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random state of the forest (default 0)")
    add_volume_options(p, SEGMENTATION_ENCODINGS)  # raw: it keeps the input's data type
    add_parallel_arguments(p)
    p.set_defaults(func=run, layer_type="segmentation")
    return p


def read_objects(path, sample):
    """The measure table (one sample's rows) as a DataFrame of strings with integer labels."""
    name = os.path.basename(path)
    table = read_tsv(path, "object table")
    if "label" not in table.columns:
        raise UserError(f"the object table {name} has no label column; give the table "
                        "`neurostation measure` writes")
    if "sample" in table.columns:
        samples = list(dict.fromkeys(table["sample"]))
        if sample is None and len(samples) > 1:
            raise UserError(f"the object table {name} holds {len(samples)} samples "
                            f"({', '.join(samples[:5])}...); choose one with --sample")
        if sample is not None:
            if sample not in samples:
                raise UserError(f"the object table {name} has no sample {sample!r}")
            table = table[table["sample"] == sample].reset_index(drop=True)
    elif sample is not None:
        raise UserError(f"--sample {sample} given but the object table {name} has no sample column")
    labels = object_ids(table["label"], f"the object table {name}")
    if len(set(labels)) != len(labels):
        raise UserError(f"the object table {name} lists an object twice")
    table.index = labels
    return table


def object_ids(values, what):
    """Positive integer object ids from strings."""
    try:
        ids = [int(v) for v in values]
    except ValueError:
        bad = next(v for v in values if not str(v).strip().lstrip("+").isdigit())
        raise UserError(f"{what} has an object id that is not a whole number: {bad!r}") from None
    if any(i < 1 for i in ids):
        raise UserError(f"{what} has an object id below 1; objects are numbered from 1")
    return ids


def read_exclusions(path, table):
    """The object ids of an exclusion list; ids the table does not have are refused."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            fields = [line.split("\t")[0].strip() for line in f]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the exclusion list {name}: {exc}") from None
    fields = [v for v in fields if v and not v.startswith("#")]
    if fields and fields[0].lower() == "label":
        fields = fields[1:]
    ids = object_ids(fields, f"the exclusion list {name}")
    unknown = sorted(set(ids) - set(table.index))
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        raise UserError(f"the exclusion list {name} names {len(unknown)} object(s) that are not "
                        f"in the object table: {shown}")
    return set(ids)


def feature_columns(table, given):
    """--columns, else every numeric column that is not the label, sample or a position."""
    if given:
        return [c.strip() for c in given.split(",") if c.strip()]
    return [c for c in table.columns if c not in NOT_FEATURES
            and not c.startswith(POSITION_PREFIXES) and numeric(table[c])]


def numeric(column):
    """True when every value of a column of strings is a number or missing (n/a, empty)."""
    values = column[~column.isin(["n/a", ""])]
    return len(values) > 0 and bool(pd.to_numeric(values, errors="coerce").notna().all())


def features_of(table, columns, name):
    """The (objects, columns) float array; missing columns are refused."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"the object table {name} lacks the feature column(s) "
                        f"{', '.join(missing)}")
    if not columns:
        raise UserError(f"the object table {name} has no numeric feature column")
    return to_numbers(table[columns], "object table", name)


def read_training(path, table):
    """{object id: class name} of the training TSV (columns label and class)."""
    name = os.path.basename(path)
    frame = read_tsv(path, "training table")
    if not {"label", "class"} <= set(frame.columns):
        raise UserError(f"the training table {name} needs the columns label and class")
    ids = object_ids(frame["label"], f"the training table {name}")
    classes = [c.strip() for c in frame["class"]]
    if not all(classes):
        raise UserError(f"the training table {name} has an object without a class")
    given = {}
    for i, c in zip(ids, classes):
        if given.setdefault(i, c) != c:
            raise UserError(f"the training table {name} gives object {i} two classes")
    unknown = sorted(set(given) - set(table.index))
    if unknown:
        raise UserError(f"the training table {name} names object(s) not in the object table: "
                        f"{', '.join(map(str, unknown[:10]))}")
    if len(set(given.values())) < 2:
        raise UserError(f"the training table {name} has only one class "
                        f"({next(iter(given.values()))}); training needs at least two")
    return given


def classify(table, args, jobs):
    """(class per object, probability of that class); the model is trained or loaded."""
    from sklearn.ensemble import RandomForestClassifier

    name = os.path.basename(args.table)
    if args.apply:
        model, settings = load_model(args.apply, MODEL_KIND)
        columns, names = settings.get("columns"), settings.get("classes")
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)
                and isinstance(names, list) and all(isinstance(c, str) for c in names)
                and len(names) == len(model.classes_)):
            raise UserError(f"the model {os.path.basename(args.apply)} holds invalid settings; "
                            "train it again")
        values = features_of(table, columns, name)
        if model.n_features_in_ != values.shape[1]:
            raise UserError(f"the model {os.path.basename(args.apply)} takes "
                            f"{model.n_features_in_} features, not {values.shape[1]}")
        given = {}
    else:
        given = read_training(args.training, table)
        columns = feature_columns(table, args.columns)
        values = features_of(table, columns, name)
        names = sorted(set(given.values()))
        rows = table.index.get_indexer(list(given))
        model = RandomForestClassifier(n_estimators=args.trees, random_state=args.seed,
                                       n_jobs=jobs)
        model.fit(values[rows], [names.index(given[i]) for i in given])
        settings = {"columns": columns, "classes": names}
        if args.save_model:
            save_model(args.save_model, MODEL_KIND, model, settings)
        print(f"trained on {len(given)} objects of {len(names)} classes with the columns "
              f"{', '.join(columns)}", file=sys.stderr)
    proba = model.predict_proba(values)
    names = np.array(settings["classes"], dtype=object)
    classes = pd.Series(names[model.classes_[np.argmax(proba, axis=1)]], index=table.index)
    probability = pd.Series(proba.max(axis=1), index=table.index)
    for i, c in given.items():  # labelled objects keep the class they were given
        classes[i], probability[i] = c, 1.0
    return classes, probability, list(names)


class FilteredLabels:
    """The label volume with the objects not in `kept` set to 0, read box by box."""

    def __init__(self, labels, kept):
        self.labels, self.kept = labels, np.array(sorted(kept), dtype=np.int64)
        self.shape, self.channels, self.dtype = labels.shape, 1, labels.dtype

    def read(self, box):
        data = read_labels(self.labels, box)
        data = np.where(np.isin(data, self.kept), data, 0).astype(self.dtype, copy=False)
        return np.asfortranarray(data[..., None])


def run(args):
    check_tiff_options(args)
    kind, jobs = output_format(args), resolve_jobs(args.jobs)
    if args.save_model and not args.training:
        raise UserError("--save-model needs --training")
    if (args.columns or args.trees != 100 or args.seed) and not args.training:
        raise UserError("--columns, --trees and --seed apply to training (--training)")
    if args.keep_class and not (args.training or args.apply):
        raise UserError("--keep-class needs a classification: --training or --apply")
    if args.trees < 1 or args.seed < 0:
        raise UserError(f"--trees must be 1 or more and --seed 0 or more, got {args.trees} and "
                        f"{args.seed}")
    table = read_objects(args.table, args.sample)
    excluded = read_exclusions(args.exclude, table) if args.exclude else set()
    kept = table.index.difference(sorted(excluded))
    out = table.loc[kept]
    if args.training or args.apply:
        classes, probability, names = classify(table, args, jobs)
        if args.keep_class and args.keep_class not in names:
            raise UserError(f"--keep-class {args.keep_class}: the classes are {', '.join(names)}")
        out = out.assign(**{"class": classes[kept], "class_probability": probability[kept]})
        if args.keep_class:
            out = out[out["class"] == args.keep_class]
    work = workdir()
    try:
        labels = open_labels(args.input, work, mip=args.mip)
        volume = FilteredLabels(labels, out.index)
        if kind == "tiff":
            write_tiff(args.output, volume, labels.voxel_nm, jobs, desc="writing labels")
        else:
            write_precomputed(volume, labels, args, jobs, {"command": "classify-objects",
                                                           "objects": len(out)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_frame(args.table_out, out)
    print(f"kept {len(out)} of {len(table)} objects ({len(excluded)} excluded"
          + (f", class {args.keep_class} only" if args.keep_class else "") + ")", file=sys.stderr)
