"""What the benchmarks share: timing a command with its peak memory, writing a big NIfTI series."""

import resource
import subprocess
import time
from collections import namedtuple

import nibabel as nib
import numpy as np
import psutil


Measured = namedtuple("Measured", "seconds peak_mib cpu_seconds")


def measure_run(cmd):
    """Wall time, peak RSS (MiB, the command and all its children, sampled every 20 ms) and CPU
    time (user + system of the whole process tree) of a command. CPU time does not depend on
    what else loads the machine; wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.read().decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(elapsed, peak / 2**20, cpu)


def run_measured(cmd):
    """Wall time and peak RSS (MiB) of a command and all its children (see measure_run)."""
    return tuple(measure_run(cmd)[:2])


def write_nifti_series(path, affine, n_t, volume, tr=None):
    """A float32 NIfTI-1 series written volume by volume, so memory stays one volume:
    `volume(t)` gives the 3D array of time point t (all of one shape)."""
    first = np.asarray(volume(0), np.float32)
    header = nib.Nifti1Header()
    header.set_data_shape(first.shape + (n_t,))
    header.set_data_dtype(np.float32)
    header.set_qform(affine, 1)
    header.set_sform(affine, 1)
    header.set_xyzt_units("mm", "sec")
    if tr:
        header["pixdim"][4] = tr
    with open(path, "wb") as out:
        header.write_to(out)
        out.write(b"\0" * (int(header["vox_offset"]) - out.tell()))
        for t in range(n_t):
            vol = first if t == 0 else np.asarray(volume(t), np.float32)
            out.write(vol.tobytes(order="F"))
