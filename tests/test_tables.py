"""The TSV writer of every table tool against pandas' to_csv with the same format."""

import numpy as np
import pandas as pd
import pytest

from neurostation.analysis.fmri import tables
from neurostation.analysis.fmri.tables import write_frame


def test_write_frame_matches_pandas_to_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "ROWS_AT_ONCE", 4)  # 6 rows: written in two slices
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "label": np.arange(1, 7, dtype=np.uint32),
        "offset": np.array([-3, 0, 2, 5, -1, 9], np.int8),
        "volume_um3": rng.random(6) * 1e4,
        "ratio": np.array([np.nan, -0.0, np.inf, 1 / 3, 1e-20, 123456789012345.0]),
        "weight": rng.random(6).astype(np.float32),
        "kept": [True, False, True, True, False, True],
        "sample": ["a b", 'quo"te', "tab\there", None, np.nan, "plain"],
    })
    write_frame(tmp_path / "ours.tsv", frame)
    frame.to_csv(tmp_path / "pandas.tsv", sep="\t", index=False, float_format="%.12g",
                 na_rep="n/a", lineterminator="\n")
    ours = (tmp_path / "ours.tsv").read_text()
    assert ours == (tmp_path / "pandas.tsv").read_text()
    assert ours.splitlines()[2].split("\t")[3] == "-0"  # and NaN became n/a on line 2
    assert ours.splitlines()[1].split("\t")[3] == "n/a"
    assert pd.read_csv(tmp_path / "ours.tsv", sep="\t")["volume_um3"].tolist() == \
        pytest.approx(frame["volume_um3"].tolist(), rel=1e-11)


def test_write_frame_of_no_rows_writes_the_header(tmp_path):
    write_frame(tmp_path / "empty.tsv", pd.DataFrame({"label": [], "volume": []}))
    assert (tmp_path / "empty.tsv").read_text() == "label\tvolume\n"
