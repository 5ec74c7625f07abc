"""Run box tasks in a process pool sized by --jobs / GALAXY_SLOTS, or on a Dask cluster
(--scheduler), with bounded memory either way."""

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from itertools import islice

from ..errors import UserError
from ..progress import progress

CONNECT_TIMEOUT = "10s"  # a wrong or unreachable scheduler address fails in this time
_backend = {"scheduler": None}


def add_parallel_arguments(p):
    """--jobs and --scheduler, for every command that runs box tasks."""
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="parallel processes (default: GALAXY_SLOTS, else 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the box tasks on this existing Dask cluster (e.g. "
                   "tcp://10.0.0.5:8786) instead of local processes; its workers need NeuroStation "
                   "installed and must see the same input and output paths")


def use_scheduler(address):
    """Send this process's box tasks to the Dask scheduler at `address` (None: local processes)."""
    if address is not None and "://" not in address:
        raise UserError(f"--scheduler must be an address like tcp://HOST:PORT, got {address!r}")
    _backend["scheduler"] = address


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

    At most `in_flight` tasks per worker are queued at once, so memory stays bounded by a few
    boxes however many there are. With one job everything runs in this process; with a
    scheduler set (use_scheduler) the tasks run on the Dask cluster's workers instead.
    """
    items = list(items)
    if _backend["scheduler"] and items:
        yield from progress(_on_cluster(func, items, in_flight), total=len(items), desc=desc)
        return
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


def _connect(address):
    """A client of the scheduler at `address`, or a one-line error if it cannot be reached."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


def _on_cluster(func, items, in_flight):
    """Results of func over items on the Dask cluster, as they end, a bounded number queued."""
    from distributed import as_completed

    with _connect(_backend["scheduler"]) as client:
        slots = max(1, sum(client.nthreads().values()))
        queue = iter(items)
        running = as_completed([client.submit(func, item, pure=False)
                                for item in islice(queue, in_flight * slots)], loop=client.loop)
        for future in running:
            try:
                result = future.result()
            except FileNotFoundError as exc:
                raise UserError(f"a Dask worker cannot find {exc.filename or exc}: the "
                                "workers must see the same files at the same paths as this "
                                "machine") from None
            future.release()
            for item in islice(queue, 1):
                running.add(client.submit(func, item, pure=False))
            yield result
