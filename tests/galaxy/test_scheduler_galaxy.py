"""The tools' "Dask scheduler address" field, end to end: a Dask scheduler and two workers (the
package venv) on loopback, and Galaxy runs tools in their job containers (the network
destination) with that address. Their outputs equal those of the same tools on the job's own
cores, and the scheduler ran the box tasks.

Runs against the live local Galaxy (scripts/test starts it) through bioblend, in the tooling
venv; the cluster and the checks of its task counts run with the package venv's Python.
"""

import json
import os
import socket
import subprocess

import pytest
from galaxy_jobs import PACKAGE_BIN, ROOT, package_python, run_tool, tiff_voxels, upload_tiff

MASK = os.path.join(ROOT, "test-data", "label_mask.ome.tif")
STACK = os.path.join(ROOT, "test-data", "stack.ome.tif")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`dask scheduler` and `dask worker` (two single-threaded processes) on 127.0.0.1."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    folder = tmp_path_factory.mktemp("dask")
    dask = os.path.join(PACKAGE_BIN, "dask")
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    processes.append(subprocess.Popen(
        [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
         "--local-directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        package_python("import sys; from distributed import Client; "
                       "Client(sys.argv[1], timeout=60).wait_for_workers(2, timeout=60)", address)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def finished_tasks(address):
    """Tasks that reached memory on the scheduler so far, by task name prefix."""
    return json.loads(package_python(
        "import json, sys; from distributed import Client; c = Client(sys.argv[1], timeout=30); "
        "print(json.dumps(c.run_on_scheduler(lambda dask_scheduler: {n: p.state_counts.get("
        "'memory', 0) for n, p in dask_scheduler.task_prefixes.items()})))", address))


@pytest.fixture(scope="module")
def galaxy(user_galaxy):
    history = user_galaxy.histories.create_history("Dask scheduler test")
    yield user_galaxy, history["id"]
    user_galaxy.histories.delete_history(history["id"], purge=True)


def test_tools_run_their_boxes_on_the_scheduler(galaxy, cluster, tmp_path):
    """Label objects, then Measure objects on its labels: the same labels and table."""
    gi, history = galaxy
    mask = upload_tiff(gi, history, MASK)
    results = {}
    for where, address in (("job", ""), ("dask", cluster)):
        before = finished_tasks(cluster)
        labels, _ = run_tool(gi, history, "ns_label_objects", {"input": mask, "scheduler": address})
        table, _ = run_tool(gi, history, "ns_measure_objects", {
            "samples|how": "one", "samples|labels": {"src": "hda", "id": labels["id"]},
            "scheduler": address})
        after = finished_tasks(cluster)
        path = tmp_path / f"{where}.tif"
        gi.datasets.download_dataset(labels["id"], file_path=str(path), use_default_filename=False)
        results[where] = (tiff_voxels(path), gi.datasets.download_dataset(table["id"]).decode(),
                          {name: count - before.get(name, 0) for name, count in after.items()})
    job, dask = results["job"], results["dask"]
    assert dask[0] == job[0] and max(max(max(row) for row in plane) for plane in job[0]) == 4
    assert dask[1] == job[1] and len(job[1].splitlines()) == 5  # a header, the mask's 4 objects
    assert not any(job[2].values())  # on the job's own cores: nothing reached the scheduler
    assert dask[2].get("FirstPass", 0) >= 1 and dask[2].get("Contacts", 0) >= 1
    assert sum(dask[2].values()) > dask[2]["FirstPass"] + dask[2]["Contacts"]  # measure's too


def test_workers_write_the_volume_into_the_job(galaxy, cluster, tmp_path):
    """With the scheduler, "Filter image" into the history (a precomputed volume) has the workers
    write the chunks into the job's output folder. "Extract region" (on the job's cores) reads
    the whole volume back: voxel for voxel what the same chain gives without the scheduler."""
    gi, history = galaxy
    stack = upload_tiff(gi, history, STACK)
    voxels, ran = {}, {}
    for where, address in (("job", ""), ("dask", cluster)):
        before = finished_tasks(cluster)
        smooth, _ = run_tool(gi, history, "ns_filter_image", {
            "input": stack, "filter|method": "gaussian", "filter|sigma": 1.5,
            "destination|where": "galaxy", "chunk_x": 8, "chunk_y": 8, "chunk_z": 2,
            "scheduler": address})
        after = finished_tasks(cluster)
        ran[where] = sum(after.values()) - sum(before.values())
        region, _ = run_tool(gi, history, "ns_cutout_volume", {
            "input": {"src": "hda", "id": smooth["id"]}, "region|whole": "yes"})
        path = tmp_path / f"{where}.tif"
        gi.datasets.download_dataset(region["id"], file_path=str(path), use_default_filename=False)
        voxels[where] = tiff_voxels(path)
    assert voxels["dask"] == voxels["job"]
    assert len(voxels["job"]) == 4 and len({v for p in voxels["job"] for r in p for v in r}) > 50
    assert ran["job"] == 0 and ran["dask"] > 1  # the filter's boxes and the pyramid's
