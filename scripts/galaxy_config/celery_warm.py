"""Celery app of the harness's worker (`celery --app celery_warm worker`, scripts/galaxy).

It is Galaxy's own app (galaxy.celery) plus one thing: as soon as the worker is ready it
builds its Galaxy app and starts the process pool that runs uploads (each pool process
imports Galaxy's metadata code, some 15 s of CPU). Galaxy does both lazily, on the first
tasks, so the first uploads of a test run used to wait minutes on a small machine.
scripts/galaxy up waits for READY_LINE in the worker's log.
"""

import logging
import os
import threading
import time

from celery.signals import worker_ready
from galaxy.celery import build_app, celery_app  # noqa: F401  (the app celery --app loads)

log = logging.getLogger("celery_warm")
READY_LINE = "neurostation harness: Galaxy app built in the worker"


@worker_ready.connect
def warm_galaxy_app(sender=None, **_kwargs):
    def build():
        started = time.time()
        build_app()
        pool = getattr(celery_app, "fork_pool", None)
        if pool is not None:
            # One trivial call per pool process starts them all (and runs their initializer).
            n = int(os.environ.get("NS_GALAXY_CELERY_THREADS", "2"))  # = its max_workers
            for future in [pool.schedule(os.getpid) for _ in range(n)]:
                future.result()
        log.warning("%s after %.1f s", READY_LINE, time.time() - started)

    threading.Thread(target=build, name="warm-galaxy-app", daemon=True).start()
