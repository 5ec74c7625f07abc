"""Helpers of the bioblend tests: upload a TIFF, run a tool and wait for its job; read TIFFs
with the package venv's Python (this, the tooling venv, only drives Galaxy)."""

import json
import os
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PACKAGE_BIN = os.path.join(ROOT, ".venv", "bin")


def upload_tiff(gi, history, path):
    """Upload a TIFF as ome.tiff under its file name; once ready, the tool input naming it."""
    upload = gi.tools.upload_file(str(path), history, file_type="ome.tiff",
                                  file_name=os.path.basename(path))
    dataset = upload["outputs"][0]
    gi.datasets.wait_for_dataset(dataset["id"])
    return {"src": "hda", "id": dataset["id"]}


def run_tool(gi, history, tool, inputs, ok=True):
    """Run a tool; its first output (a dataset dict) and job details, once the job ended green
    (ok) or red (not ok)."""
    run = gi.tools.run_tool(history, tool, inputs)
    out = run["outputs"][0]
    gi.datasets.wait_for_dataset(out["id"], maxwait=900, check=False)
    state = gi.datasets.show_dataset(out["id"])["state"]
    job = gi.jobs.show_job(run["jobs"][0]["id"], full_details=True)
    assert (state == "ok") == ok, f"{tool}: {state}\n{job.get('stderr', '')}"
    return out, job


def package_python(code, *argv):
    """Run `code` with the package venv's Python (numpy, tifffile, dask); its stdout."""
    return subprocess.run([os.path.join(PACKAGE_BIN, "python"), "-c", code, *map(str, argv)],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def tiff_voxels(path):
    """A TIFF's voxels as nested lists (z, y, x)."""
    return json.loads(package_python(
        "import sys, json, tifffile; print(json.dumps(tifffile.imread(sys.argv[1]).tolist()))",
        path))
