"""Resumability: which boxes of a volume a run has written, kept beside the volume.

A re-run with the same arguments skips the boxes marked done; different arguments start
over. The journal is removed once the volume's completion record is written.
"""

import hashlib
import os
import shutil
import json

from ..io.precomputed import cloud_files

FOLDER = "neurostation.progress"


def mark_done(url, key):
    """Record that box `key` is written (called by the task that wrote it, last)."""
    cloud_files(url).put(f"{FOLDER}/done/{key}", b"", compress=None)


class Journal:
    """The done-markers of one run, keyed by a hash of the run's arguments."""

    def __init__(self, url, params):
        self.url = url
        self.files = cloud_files(url)
        run_id = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
        stored = self.files.get(f"{FOLDER}/run")
        if stored is None or stored.decode() != run_id:
            self.clear()
            self.files.put(f"{FOLDER}/run", run_id.encode(), compress=None)

    def done(self):
        """Keys of the boxes already written by a run with the same arguments."""
        prefix = f"{FOLDER}/done/"
        return {path[len(prefix):] for path in self.files.list(prefix=prefix)}

    def clear(self):
        self.files.delete(list(self.files.list(prefix=FOLDER)))
        if self.url.startswith("file://"):  # local folders outlive their files
            shutil.rmtree(os.path.join(self.url[len("file://"):], FOLDER), ignore_errors=True)
