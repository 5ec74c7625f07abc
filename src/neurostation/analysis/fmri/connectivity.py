"""`neurostation connectivity`: correlation, partial correlation or covariance matrices of
region time series (one or a group of subjects), with the same estimators as nilearn's
ConnectivityMeasure; the mean matrix, a heatmap and the per-subject upper triangles."""

import os
import sys

import numpy as np
import pandas as pd

from ...errors import UserError
from ...io.bids import bids_entities, sample_label
from . import heatmap
from .tables import read_timeseries, write_frame

KINDS = ("correlation", "partial-correlation", "covariance")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "connectivity", help="compute connectivity matrices from region time series",
        description="Compute a connectivity matrix (correlation, partial correlation or "
        "covariance between regions) from each time-series table (as written by "
        "fmri-timeseries: one column per region, one row per volume). The covariance is "
        "estimated by the empirical (maximum-likelihood) estimator by default, or with "
        "Ledoit-Wolf shrinkage (scikit-learn), which is nilearn ConnectivityMeasure's default. "
        "As in nilearn, signals are z-scored before estimating a correlation, not before a "
        "partial correlation or covariance. With several tables (a group) the matrix written "
        "is the mean over subjects "
        "(of the Fisher z values with --fisher-z), and --edges gets one row per subject.",
        epilog="example: neurostation connectivity sub-01_timeseries.tsv sub-02_timeseries.tsv "
        "--kind correlation --fisher-z -o mean_matrix.tsv --heatmap mean_matrix.png --edges "
        "edges.tsv",
    )
    p.add_argument("inputs", nargs="+", metavar="TABLE",
                   help="time-series tables (TSV, one column per region, one row per volume), "
                   "one per subject, all with the same regions")
    p.add_argument("-o", "--output", required=True,
                   help="matrix to write (TSV: first column 'region', then one column per "
                   "region); the mean matrix for a group")
    p.add_argument("--heatmap", metavar="PNG",
                   help="also draw the matrix as a heatmap (800 x 700 px PNG, colours centred "
                   "at 0)")
    p.add_argument("--edges", metavar="TSV",
                   help="also write each subject's upper triangle (without the diagonal): one "
                   "row per subject (columns sample, subject, session, then 'A|B' per region "
                   "pair)")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="names of the inputs (Galaxy element identifiers); BIDS names such as "
                   "sub-01_ses-1_task-rest give the subject and session labels")
    p.add_argument("--kind", choices=KINDS, default="correlation",
                   help="correlation (default), partial-correlation (from the inverse "
                   "covariance) or covariance (of the signals as given, in their units squared)")
    p.add_argument("--estimator", choices=("empirical", "ledoit-wolf"), default="empirical",
                   help="covariance estimator: empirical (default, sklearn EmpiricalCovariance) "
                   "or ledoit-wolf (sklearn LedoitWolf shrinkage; nilearn's default, steadier "
                   "when there are few volumes for many regions)")
    p.add_argument("--fisher-z", action="store_true",
                   help="apply Fisher's z transform (arctanh) to correlations; the diagonal is "
                   "then written as 0")
    p.set_defaults(func=run)
    return p


def zscore(signals):
    """Each column with mean 0 and unit standard deviation (n - 1 in the denominator, as
    nilearn's 'zscore_sample')."""
    centred = signals - signals.mean(axis=0)
    std = centred.std(axis=0, ddof=1)
    return centred / np.where(std > 0, std, 1.0)


def covariance(signals, estimator):
    """Covariance matrix of the columns: the empirical (maximum-likelihood, n in the
    denominator) one as scikit-learn's EmpiricalCovariance computes it, or LedoitWolf."""
    if estimator == "empirical":
        centred = signals - signals.mean(axis=0)
        return centred.T @ centred / len(signals)
    from sklearn.covariance import LedoitWolf

    return LedoitWolf().fit(signals).covariance_


def matrix(signals, kind, estimator):
    """The connectivity matrix of one subject's signals (volumes x regions)."""
    if kind == "covariance":
        return covariance(signals, estimator)
    if kind == "correlation":
        cov = covariance(zscore(signals), estimator)
        d = np.sqrt(np.diag(cov))
        out = cov / np.outer(d, d)
    else:
        cov = covariance(signals, estimator)
        try:
            precision = np.linalg.inv(cov)
        except np.linalg.LinAlgError:
            raise UserError("the covariance matrix is singular (more regions than volumes, or "
                            "identical regions); use --estimator ledoit-wolf") from None
        d = np.sqrt(np.diag(precision))
        out = -precision / np.outer(d, d)
    np.fill_diagonal(out, 1.0)
    return out


def fisher_z(m):
    """arctanh of the off-diagonal values; the diagonal (arctanh 1 = inf) becomes 0."""
    out = np.arctanh(np.clip(m, -1 + 1e-15, 1 - 1e-15))
    np.fill_diagonal(out, 0.0)
    return out


def upper(names, m):
    """(column names 'A|B', values) of the upper triangle without the diagonal."""
    i, j = np.triu_indices(len(names), k=1)
    return [f"{names[a]}|{names[b]}" for a, b in zip(i, j)], m[i, j]


def load_group(inputs, names):
    """[(sample label, region names, signals)] for every input, checking shared regions."""
    if names and len(names) != len(inputs):
        raise UserError(f"--names gives {len(names)} names for {len(inputs)} inputs; give one "
                        "name per input, in the same order")
    names = list(names) if names else [os.path.basename(p) for p in inputs]
    group = []
    for path, name in sorted(zip(inputs, names), key=lambda pn: sample_label(pn[1])):
        regions, signals = read_timeseries(path, name)
        if signals.shape[1] < 2:
            raise UserError(f"the time-series table {name} has {signals.shape[1]} region; at "
                            "least 2 are needed for a matrix")
        if group and regions != group[0][1]:
            raise UserError(f"the time-series tables {group[0][3]} and {name} have different "
                            "regions; give tables made with the same atlas")
        group.append((sample_label(name), regions, signals, name))
    labels = [g[0] for g in group]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise UserError(f"several inputs have the sample label {', '.join(dup)}; give distinct "
                        "names (--names)")
    return group


def run(args):
    if args.fisher_z and args.kind == "covariance":
        raise UserError("--fisher-z applies to correlations, not to --kind covariance")
    group = load_group(args.inputs, args.names)
    regions = group[0][1]
    mats = []
    for label, _, signals, _ in group:
        m = matrix(signals, args.kind, args.estimator)
        mats.append(fisher_z(m) if args.fisher_z else m)
    mean = np.mean(mats, axis=0)
    frame = pd.DataFrame(mean, columns=regions)
    frame.insert(0, "region", regions)
    if args.edges:
        rows = []
        for (label, _, _, name), m in zip(group, mats):
            cols, values = upper(regions, m)
            ents = bids_entities(name)
            rows.append([label, ents.get("sub", label), ents.get("ses", "n/a")] + list(values))
        write_frame(args.edges, pd.DataFrame(rows, columns=["sample", "subject", "session"] + cols))
    if args.heatmap:
        what = args.kind.replace("-", " ") + (" (Fisher z)" if args.fisher_z else "")
        title = (f"{what}, {group[0][0]}" if len(group) == 1
                 else f"mean {what} of {len(group)} subjects")
        heatmap.draw(args.heatmap, regions, mean, title, what)
    write_frame(args.output, frame)
    print(f"{args.kind} matrix of {len(regions)} regions from {len(group)} subject(s) "
          f"({args.estimator} covariance)", file=sys.stderr)
