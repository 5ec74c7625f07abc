"""Run box tasks in a process pool sized by --jobs / GALAXY_SLOTS, with bounded memory."""

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ..errors import UserError
from ..progress import progress


def default_jobs():
    """Cores a job is given: Galaxy's GALAXY_SLOTS, else 1 (never more than the machine has)."""
    slots = os.environ.get("GALAXY_SLOTS", "1")
    try:
        return max(1, min(int(slots), os.cpu_count() or 1))
    except ValueError:
        return 1


def resolve_jobs(jobs):
    """--jobs N, or 0/None for the default."""
    if jobs is None or jobs == 0:
        return default_jobs()
    if jobs < 0:
        raise UserError(f"--jobs must be 0 (automatic) or a positive number, got {jobs}")
    return jobs


def run_tasks(func, items, jobs=None, desc="", in_flight=2):
    """Call `func(item)` for every item, `jobs` processes at a time, yielding results as they end.

    At most `in_flight * jobs` tasks are queued at once, so memory stays bounded by a few
    boxes however many there are. With one job everything runs in this process.
    """
    items = list(items)
    jobs = resolve_jobs(jobs)
    if jobs == 1 or len(items) <= 1:
        yield from progress((func(item) for item in items), total=len(items), desc=desc)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending, queue = set(), iter(items)

        def refill():
            for item in queue:
                pending.add(pool.submit(func, item))
                if len(pending) >= in_flight * jobs:
                    break

        def finished():
            refill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.discard(future)
                    yield future.result()
                refill()

        yield from progress(finished(), total=len(items), desc=desc)
