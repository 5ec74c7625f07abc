"""Volumes in object storage over the real S3 protocol: a moto S3 server on loopback,
reached by cloud-volume through a cloud-files protocol alias (credentials from the
environment only)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tifffile

MOTO = os.path.join(os.path.dirname(sys.executable), "moto_server")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with a bucket, and the env a CLI run needs to reach it."""
    port = _free_port()
    server = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(f"{endpoint}/lab-bucket", method="PUT")
        urllib.request.urlopen(req, timeout=5)
        config = tmp_path_factory.mktemp("cloudfiles")
        (config / "aliases.json").write_text(json.dumps({"labs3": {"host": f"s3://{endpoint}/"}}))
        env = dict(os.environ, CLOUD_FILES_DIR=str(config), AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing-secret", AWS_SESSION_TOKEN="",
                   AWS_DEFAULT_REGION="us-east-1")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_ingest_to_s3_then_info_and_cutout(tmp_path, cli, s3):
    rng = np.random.default_rng(5)
    stack = rng.integers(0, 4000, size=(12, 70, 90), dtype=np.uint16)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, metadata={"axes": "ZYX"})
    url = "labs3://lab-bucket/experiments/vol1"
    ref = tmp_path / "ref.json"
    result = cli("ingest", src, "-o", url, "--voxel-size", "0.5,0.5,2", "--voxel-unit", "um",
                 "--chunk-size", "32,32,8", "--reference", ref, env=s3)
    assert result.returncode == 0, result.stderr
    assert json.loads(ref.read_text()) == {"url": url}
    info = cli("info", ref, "--format", "json", env=s3)
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["complete"] is True and facts["shape"] == [90, 70, 12, 1]
    assert facts["max"] == int(stack.max()) and len(facts["scales"]) >= 2
    out = tmp_path / "region.tif"
    assert cli("cutout", ref, "--bbox", "10,20,3,80,60,11", "-o", out, env=s3).returncode == 0
    np.testing.assert_array_equal(tifffile.imread(out), stack[3:11, 20:60, 10:80])
    for key in ("testing-secret",):
        assert key not in result.stderr + info.stdout + info.stderr  # no credentials in outputs


def test_missing_bucket_fails_cleanly(cli, s3, data):
    result = cli("ingest", data("stack.ome.tif"), "-o", "labs3://no-such-bucket/v", env=s3)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot write a volume at labs3://no-such-bucket/v")


def test_stitch_to_s3_equals_the_tiff_mosaic(tmp_path, cli, s3):
    rng = np.random.default_rng(8)
    picture = (rng.random((150, 150)) * 255).astype(np.uint8)
    tiles = []
    for y, x in ((0, 0), (0, 70), (70, 0), (70, 70)):  # 2 x 2 tiles of 80 px, 10 px overlap
        tiles.append(tmp_path / f"tile_{len(tiles)}.tif")
        tifffile.imwrite(tiles[-1], picture[y:y + 80, x:x + 80])
    options = ["--grid", "2x2", "--overlap", "0.125", "--positions", tmp_path / "p.tsv"]
    assert cli("stitch", *tiles, "-o", tmp_path / "m.tif", *options).returncode == 0
    url = "labs3://lab-bucket/mosaics/m1"
    ref = tmp_path / "ref.json"
    result = cli("stitch", *tiles, "-o", url, "--chunk-size", "32,32,1", "--reference", ref,
                 *options, env=s3)
    assert result.returncode == 0, result.stderr
    assert json.loads(ref.read_text()) == {"url": url}
    out = tmp_path / "back.tif"
    assert cli("cutout", ref, "-o", out, env=s3).returncode == 0
    mosaic = tifffile.imread(tmp_path / "m.tif")
    np.testing.assert_array_equal(tifffile.imread(out), mosaic)
    np.testing.assert_array_equal(mosaic[:150, :150], picture)  # exact tiles, exact mosaic
    assert "testing-secret" not in result.stderr
