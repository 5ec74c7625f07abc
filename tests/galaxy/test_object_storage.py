"""Galaxy writes a volume to object storage and reads it back, end to end.

Runs against the live local Galaxy (scripts/test starts it, with its S3 server on loopback:
scripts/galaxy_s3.py) through bioblend, in the tooling venv: "Convert images to a volume"
writes to `galaxys3://…` and leaves a JSON reference in the history; "Describe image" and
"Extract region" read the volume through that reference in their job containers; the
cut-out voxels must equal the uploaded stack's.
"""

import json
import os
import uuid

import pytest
from galaxy_jobs import ROOT, run_tool, tiff_voxels, upload_tiff

STACK = os.path.join(ROOT, "test-data", "stack.ome.tif")


@pytest.fixture(scope="module")
def galaxy(user_galaxy):
    bucket = os.environ.get("NS_S3_URL")
    if not bucket:
        pytest.fail("NS_S3_URL is not set: run through scripts/test (or eval "
                    "\"$(scripts/galaxy env)\" first)")
    gi = user_galaxy
    history = gi.histories.create_history("object storage test")
    yield gi, history["id"], bucket
    gi.histories.delete_history(history["id"], purge=True)


def _stack_region(bbox):
    """The uploaded stack's voxels in bbox (x0,y0,z0,x1,y1,z1), as a nested list."""
    x0, y0, z0, x1, y1, z1 = bbox
    return [[row[x0:x1] for row in plane[y0:y1]] for plane in tiff_voxels(STACK)[z0:z1]]


def test_volume_to_object_storage_and_back(galaxy, tmp_path):
    gi, history, bucket = galaxy
    stack = upload_tiff(gi, history, STACK)
    url = f"{bucket}/galaxy-test/{uuid.uuid4().hex}/stack"
    ref, _ = run_tool(gi, history, "ns_ingest_volume", {
        "source|kind": "stack", "source|input": stack,
        "destination|where": "url", "destination|url": url,
        "chunk_x": 4, "chunk_y": 4, "chunk_z": 2})
    assert json.loads(gi.datasets.download_dataset(ref["id"])) == {"url": url}

    info, _ = run_tool(gi, history, "ns_image_info", {"input": {"src": "hda", "id": ref["id"]}})
    text = gi.datasets.download_dataset(info["id"]).decode()
    assert "complete\tTrue" in text.splitlines() and "size_x\t20" in text.splitlines()

    bbox = [1, 2, 0, 7, 6, 3]
    region, _ = run_tool(gi, history, "ns_cutout_volume", {
        "input": {"src": "hda", "id": ref["id"]}, "region|whole": "no",
        **{f"region|{k}": v for k, v in zip(("x0", "y0", "z0", "x1", "y1", "z1"), bbox)}})
    path = tmp_path / "region.tif"
    gi.datasets.download_dataset(region["id"], file_path=str(path), use_default_filename=False)
    assert tiff_voxels(str(path)) == _stack_region(bbox)


def test_missing_bucket_turns_the_job_red(galaxy):
    gi, history, bucket = galaxy
    stack = upload_tiff(gi, history, STACK)
    missing = bucket.split("://")[0] + "://no-such-bucket/volume"
    _, job = run_tool(gi, history, "ns_ingest_volume", {
        "source|kind": "stack", "source|input": stack,
        "destination|where": "url", "destination|url": missing}, ok=False)
    assert f"error: cannot write a volume at {missing}" in job["stderr"]
