"""`neurostation fmri-timeseries`: the mean signal of every atlas region in every volume of a
4D series, optionally cleaned (detrend, band-pass, confounds, z-score) with nilearn's
`signal.clean`, so the numbers equal nilearn's `NiftiLabelsMasker` with the same choices.

The series is read a few volumes at a time, in file order (gzip streams are read once, front
to back), so memory holds one block of volumes and the output table, never the 4D image.
"""

import os
import sys

import numpy as np
import pandas as pd

from ...errors import UserError
from ...io.bids import sample_label
from ...io.nifti import describe_nifti, load_series
from ...progress import progress
from . import atlas as atlas_mod
from .tables import read_label_names, read_tsv, to_numbers, write_frame

BLOCK_BYTES = 256 * 2**20  # voxel data read at once


def add_parser(subparsers):
    p = subparsers.add_parser(
        "fmri-timeseries", help="extract the mean time series of each atlas region of a 4D fMRI "
        "series",
        description="Average a 4D NIfTI series (x, y, z, time) over each region of a 3D label "
        "atlas (0 = background), giving a table with one column per region in ascending label "
        "order and one row per volume. Defaults equal nilearn's NiftiLabelsMasker defaults: "
        "region means, no detrending, no standardisation, no filtering. When the atlas is on "
        "another grid it is resampled to the series grid with nearest-neighbour interpolation "
        "(as NiftiLabelsMasker does), with a warning; regions lost by resampling are an error. "
        "Cleaning uses nilearn.signal.clean in its order: detrend, band-pass, confound "
        "regression (confounds are filtered and z-scored like the signals), standardisation.",
        epilog="example: neurostation fmri-timeseries sub-01_task-rest_bold.nii.gz atlas.nii.gz "
        "-o sub-01_timeseries.tsv --label-names atlas_labels.tsv --detrend --standardize "
        "--high-pass 0.01 --low-pass 0.1 --confounds sub-01_desc-confounds_timeseries.tsv "
        "--confound-columns trans_x,trans_y,trans_z,rot_x,rot_y,rot_z --drop-volumes 4",
    )
    p.add_argument("series", help="4D NIfTI series (x, y, z, time), .nii or .nii.gz")
    p.add_argument("atlas", help="3D NIfTI label atlas: whole numbers, 0 = background")
    p.add_argument("-o", "--output", required=True,
                   help="time-series table to write (TSV: one column per region, one row per "
                   "volume)")
    p.add_argument("--label-names", metavar="TSV",
                   help="table of region names: label number, then name (a header line such as "
                   "'index<TAB>name' is allowed); regions not listed are named by their number")
    p.add_argument("--name",
                   help="name of the series, for messages and the sample label (Galaxy element "
                   "identifier; default: the file name)")
    p.add_argument("--detrend", action="store_true",
                   help="remove a linear trend from each region's signal")
    p.add_argument("--standardize", action="store_true",
                   help="z-score each region's signal: mean 0, standard deviation 1 with n - 1 "
                   "in the denominator (nilearn's 'zscore_sample')")
    p.add_argument("--high-pass", type=float, metavar="HZ",
                   help="high-pass cut-off in Hz (Butterworth, as nilearn), e.g. 0.01")
    p.add_argument("--low-pass", type=float, metavar="HZ",
                   help="low-pass cut-off in Hz (Butterworth, as nilearn), e.g. 0.1")
    p.add_argument("--tr", type=float, metavar="SECONDS",
                   help="repetition time in seconds (default: from the NIfTI header)")
    p.add_argument("--confounds", metavar="TSV",
                   help="confounds to regress out: a TSV with a header and one row per volume, "
                   "e.g. fMRIPrep's desc-confounds_timeseries.tsv as it is ('n/a' values, such "
                   "as the first row of derivative columns, are replaced by the column mean)")
    p.add_argument("--confound-columns", metavar="NAMES",
                   help="comma-separated confound columns to use (default: all columns)")
    p.add_argument("--drop-volumes", type=int, default=0, metavar="N",
                   help="drop the first N volumes (and confound rows), e.g. non-steady-state "
                   "volumes (default 0)")
    p.set_defaults(func=run)
    return p


def region_means(img, labels_data, labels, desc="reading volumes"):
    """Array volumes x regions: the mean of each label's voxels in each volume (float64),
    reading blocks of whole volumes in file order."""
    flat = labels_data.reshape(-1, order="F")
    inside = np.flatnonzero(flat)
    order = np.argsort(flat[inside], kind="stable")
    voxels = inside[order]
    sorted_labels = flat[voxels]
    starts = np.searchsorted(sorted_labels, labels)
    counts = np.diff(np.append(starts, len(voxels))).astype(np.float64)
    n_vox, n_t = int(np.prod(img.shape[:3])), img.shape[3]
    step = max(1, min(n_t, BLOCK_BYTES // max(1, n_vox * 8)))
    out = np.empty((n_t, len(labels)))
    blocks = range(0, n_t, step)
    name = os.path.basename(img.get_filename() or "series")
    for t0 in progress(blocks, total=len(blocks), desc=desc):
        try:
            block = np.asanyarray(img.dataobj[..., t0:t0 + step])
        except Exception as exc:  # truncated gzip/raw data surfaces here
            raise UserError(f"cannot read the voxels of NIfTI {name}: {exc}") from None
        block = block.reshape(n_vox, -1, order="F")[voxels].astype(np.float64)
        out[t0:t0 + block.shape[1]] = (np.add.reduceat(block, starts, axis=0) / counts[:, None]).T
    return out


def read_confounds(path, columns, n_volumes, drop):
    """Confound array (kept volumes x columns): selected columns, first `drop` rows dropped,
    remaining n/a replaced by the column mean; wrong length -> UserError."""
    name = os.path.basename(path)
    frame = read_tsv(path, "confounds table")
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise UserError(f"the confounds table {name} has no column(s) {', '.join(missing)}; "
                            f"it has {', '.join(list(frame.columns)[:12])}"
                            f"{' ...' if frame.shape[1] > 12 else ''}")
        frame = frame[wanted]
    if len(frame) != n_volumes:
        raise UserError(f"the confounds table {name} has {len(frame)} rows but the series has "
                        f"{n_volumes} volumes; give one confound row per volume")
    values = to_numbers(frame, "confounds table", name)[drop:]
    empty = [c for c, col in zip(frame.columns, values.T) if np.isnan(col).all()]
    if empty:
        raise UserError(f"the confounds table {name} has no values in column(s) "
                        f"{', '.join(empty)} after dropping {drop} volume(s)")
    means = np.nanmean(values, axis=0)
    return np.where(np.isnan(values), means, values)


def clean_options(args, tr):
    """Keyword arguments for nilearn.signal.clean matching the CLI choices (None: no cleaning)."""
    if args.tr is not None:
        if not args.tr > 0:
            raise UserError(f"--tr must be a positive number of seconds, got {args.tr:g}")
        tr = args.tr
    band = args.low_pass is not None or args.high_pass is not None
    if band:
        if not tr or tr <= 0:
            raise UserError("band-pass filtering needs the repetition time: the header has none; "
                            "give --tr SECONDS")
        nyquist = 0.5 / tr
        for opt, value in (("--low-pass", args.low_pass), ("--high-pass", args.high_pass)):
            if value is not None and not 0 < value < nyquist:
                raise UserError(f"{opt} {value:g} Hz must be above 0 and below the Nyquist "
                                f"frequency {nyquist:g} Hz (TR {tr:g} s)")
        both = args.low_pass is not None and args.high_pass is not None
        if both and args.high_pass >= args.low_pass:
            raise UserError(f"--high-pass {args.high_pass:g} Hz must be below --low-pass "
                            f"{args.low_pass:g} Hz")
    standardize = "zscore_sample" if args.standardize else None
    return dict(detrend=args.detrend, standardize=standardize, low_pass=args.low_pass,
                high_pass=args.high_pass, t_r=tr if band else None)


def run(args):
    name = args.name or os.path.basename(args.series)
    img = load_series(args.series)
    facts = describe_nifti(args.series)
    n_t = img.shape[3]
    if not 0 <= args.drop_volumes <= n_t - 3:
        raise UserError(f"--drop-volumes {args.drop_volumes} leaves fewer than 3 of the "
                        f"{n_t} volumes of {name}")
    options = clean_options(args, facts["tr_s"])
    confounds = None
    if args.confounds:
        confounds = read_confounds(args.confounds, args.confound_columns, n_t, args.drop_volumes)
    elif args.confound_columns:
        raise UserError("--confound-columns needs --confounds")
    names = read_label_names(args.label_names) if args.label_names else None
    atlas = atlas_mod.load_labels(args.atlas)
    labels_data, labels = atlas_mod.on_grid(atlas, img.shape[:3], img.affine, names,
                                            os.path.basename(args.atlas))
    signals = region_means(img, labels_data, labels)[args.drop_volumes:]
    if confounds is not None or any(options[k] for k in ("detrend", "standardize", "t_r")):
        from nilearn.signal import clean

        signals = clean(signals, confounds=confounds, **options)
    columns = atlas_mod.region_names(labels, names)
    write_frame(args.output, pd.DataFrame(signals, columns=columns))
    print(f"{sample_label(name)}: {len(labels)} regions x {len(signals)} volumes", file=sys.stderr)
