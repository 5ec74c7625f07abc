"""Progress reporting: a bar on a terminal, periodic `progress: NN%` lines in Galaxy logs."""

import sys
import time


def progress(iterable, total=None, desc="", stream=None, min_interval=5.0):
    """Yield from `iterable`, reporting progress on stderr as work goes.

    On a terminal a tqdm bar is drawn; otherwise (Galaxy, batch jobs) a line
    `progress: NN% desc` is printed at most every `min_interval` seconds and at 100%.
    """
    stream = stream or sys.stderr
    if total is None:
        total = len(iterable)
    if stream.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, file=stream, leave=False)
        return
    last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if done == total or now - last >= min_interval:
            pct = 100 * done // max(total, 1)
            print(f"progress: {pct}% {desc}".rstrip(), file=stream, flush=True)
            last = now
