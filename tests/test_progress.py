"""Progress: `progress: NN%` lines when stderr is not a terminal (Galaxy logs)."""

import io

from neurostation.progress import progress


def test_progress_lines_when_not_a_terminal():
    stream = io.StringIO()
    items = list(progress(range(10), desc="planes", stream=stream, min_interval=0))
    assert items == list(range(10))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "progress: 10% planes"
    assert lines[-1] == "progress: 100% planes"
    assert len(lines) == 10


def test_progress_throttled_but_always_ends_at_100():
    stream = io.StringIO()
    list(progress(iter(range(1000)), total=1000, stream=stream, min_interval=3600))
    assert stream.getvalue().splitlines() == ["progress: 100%"]
