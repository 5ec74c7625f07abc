"""Tab-separated tables of the fMRI tools: time series, matrices, label names."""

import csv
import os

import numpy as np
import pandas as pd

from ...errors import UserError
from ...io.outputs import staged_file


ROWS_AT_ONCE = 8192  # rows formatted at a time: memory does not grow with the table


def write_frame(path, frame):
    """Write a DataFrame as TSV (12 significant digits, `n/a` for missing) atomically, as
    pandas' to_csv with float_format="%.12g" would, but twice as fast (that formatting path
    took a tenth of a measure run on 24,000 objects)."""
    with staged_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(frame.columns)
        for start in range(0, len(frame), ROWS_AT_ONCE):  # text of a slice at a time
            part = frame.iloc[start:start + ROWS_AT_ONCE]
            writer.writerows(zip(*(_texts(column) for _, column in part.items())))


def _texts(column):
    """The cells of one column as text: floats with 12 significant digits, missing as n/a."""
    if column.dtype.kind == "f":
        return [f"{v:.12g}" if v == v else "n/a" for v in column.tolist()]
    if column.dtype.kind in "biu":
        return column.tolist()
    return ["n/a" if v is None or v != v else v for v in column.tolist()]


def read_tsv(path, what):
    """A TSV with a header line as a DataFrame of strings; unreadable or empty -> UserError."""
    name = os.path.basename(path)
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the {what} {name}: {' '.join(str(exc).split())}") from None
    if frame.shape[1] == 0:
        raise UserError(f"the {what} {name} has no columns; give a tab-separated table with a "
                        "header line")
    return frame


def to_numbers(frame, what, name):
    """The table as float64; `n/a`/empty become NaN, anything else non-numeric -> UserError."""
    out = frame.replace({"n/a": np.nan, "": np.nan, "NaN": np.nan, "nan": np.nan})
    try:
        return out.astype(np.float64).to_numpy()
    except ValueError as exc:
        raise UserError(f"the {what} {name} holds a value that is not a number ({exc})") from None


def read_timeseries(path, name=None):
    """(region names, array volumes x regions) from a time-series table of fmri-timeseries."""
    name = name or os.path.basename(path)
    frame = read_tsv(path, "time-series table")
    values = to_numbers(frame, "time-series table", name)
    if np.isnan(values).any():
        raise UserError(f"the time-series table {name} has missing values")
    if len(values) < 3:
        raise UserError(f"the time-series table {name} has {len(values)} row(s) (volumes); at "
                        "least 3 are needed")
    return list(frame.columns), values


def read_matrix(path):
    """(region names, square symmetric matrix) from a matrix TSV (first column: region names)."""
    name = os.path.basename(path)
    frame = read_tsv(path, "matrix")
    rows, cols = list(frame.iloc[:, 0]), list(frame.columns[1:])
    values = to_numbers(frame.iloc[:, 1:], "matrix", name)
    if values.shape[0] != values.shape[1]:
        raise UserError(f"the matrix {name} is not square: {values.shape[0]} rows x "
                        f"{values.shape[1]} columns of values")
    if rows != cols:
        bad = next(i for i, (r, c) in enumerate(zip(rows, cols)) if r != c)
        raise UserError(f"the matrix {name} names its rows and columns differently (row "
                        f"{bad + 1} is '{rows[bad]}', column {bad + 1} is '{cols[bad]}')")
    if not np.isfinite(values).all():
        raise UserError(f"the matrix {name} has missing or infinite values")
    if not np.allclose(values, values.T, rtol=1e-6, atol=1e-9):
        i, j = np.unravel_index(np.argmax(np.abs(values - values.T)), values.shape)
        raise UserError(f"the matrix {name} is not symmetric: ({rows[i]}, {rows[j]}) = "
                        f"{values[i, j]:g} but ({rows[j]}, {rows[i]}) = {values[j, i]:g}")
    return rows, values


def read_label_names(path):
    """{label number: name} from a table whose first column is the label number and second its
    name (a header line such as `index<TAB>name` is skipped)."""
    name = os.path.basename(path)
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, header=None, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the label-names table {name}: {exc}") from None
    if frame.shape[1] < 2:
        raise UserError(f"the label-names table {name} needs two columns: label number and name")
    names = {}
    for i, (number, label) in enumerate(zip(frame[0], frame[1])):
        try:
            value = float(number)
        except ValueError:
            if i == 0:
                continue  # header line
            raise UserError(f"the label-names table {name}: '{number}' on line {i + 1} is not "
                            "a label number") from None
        if value != int(value):
            raise UserError(f"the label-names table {name}: {number} is not a whole number")
        names[int(value)] = label.strip()
    if len(set(names.values())) != len(names):
        raise UserError(f"the label-names table {name} gives the same name to several labels")
    return names
