"""`neurostation view`: the Neuroglancer state and link for volumes, and the local viewer.

Volumes are written in tmp by our own writer (`ingest`); the contrast is checked against
numpy percentiles of the coarsest scale as TensorStore reads it (an independent reader).
"""

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tifffile

from test_ingest import read_with_tensorstore

PUBLIC = "https://data.example.org/vol"


def make_volume(folder, name, zyx, *args):
    """A precomputed volume written by `ingest` from the (z, y, x) array `zyx`."""
    src = folder / f"{name}.tif"
    tifffile.imwrite(src, zyx, photometric="minisblack", metadata={"axes": "ZYX"})
    out = folder / name
    result = subprocess.run([sys.executable, "-m", "neurostation.cli", "ingest", str(src), "-o",
                             str(out), "--chunk-size", "8,8,4", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    rng = np.random.default_rng(1)
    zyx = rng.gamma(2.0, 300.0, size=(12, 40, 50)).astype(np.uint16)
    return make_volume(tmp_path_factory.mktemp("image"), "image", zyx, "--voxel-size", "4,4,40")


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    zyx = np.zeros((12, 40, 50), np.uint32)
    zyx[:, 5:20, 5:25], zyx[:, 20:35, 25:45] = 7, 9
    return make_volume(tmp_path_factory.mktemp("labels"), "labels", zyx, "--voxel-size", "8,8,40",
                       "--layer-type", "segmentation")


def view(cli, tmp_path, *args):
    """Run `view ... -o state.json --link link.txt`; return (result, state or None, link or None)."""
    state, link = tmp_path / "state.json", tmp_path / "link.txt"
    result = cli("view", *args, "-o", state, "--link", link)
    if result.returncode:
        return result, None, None
    return result, json.loads(state.read_text()), link.read_text()


def decode(link):
    """The state a Neuroglancer link carries: `#!` then the URL-encoded JSON."""
    return json.loads(urllib.parse.unquote(link.split("#!", 1)[1]))


def coarsest_percentiles(path):
    scales = json.loads((path / "info").read_text())["scales"]
    values = read_with_tensorstore(path, len(scales) - 1)[..., 0]
    return np.percentile(values, [1, 99])


def test_image_state(tmp_path, cli, image):
    result, state, link = view(cli, tmp_path, image, "--public-url", image, PUBLIC)
    assert result.returncode == 0, result.stderr
    assert state["dimensions"] == {"x": [4e-9, "m"], "y": [4e-9, "m"], "z": [4e-8, "m"]}
    assert state["position"] == [25.0, 20.0, 6.0]  # centre of 50 x 40 x 12 voxels
    # largest extent: 12 * 40 nm = 480 nm = 120 voxels of 4 nm, in 400 pixels
    assert state["crossSectionScale"] == pytest.approx(120 / 400)
    assert state["layout"] == "4panel"
    layer, = state["layers"]
    assert layer["type"] == "image" and layer["source"] == f"precomputed://{PUBLIC}"
    assert layer["name"] == "image" and "shader" not in layer
    lo, hi = coarsest_percentiles(image)
    assert layer["shaderControls"] == {"normalized": {"range": [int(np.floor(lo)), int(np.ceil(hi))]}}
    assert state["selectedLayer"] == {"layer": "image", "visible": True}
    assert link.strip().startswith("https://neuroglancer-demo.appspot.com/#!")
    assert decode(link.strip()) == state and result.stdout.strip() == link.strip()


def test_float_contrast_is_the_exact_percentiles(tmp_path, cli):
    rng = np.random.default_rng(2)
    vol = make_volume(tmp_path, "f", rng.normal(5.0, 2.0, size=(8, 30, 30)).astype(np.float32))
    result, state, _ = view(cli, tmp_path, vol, "--public-url", vol, PUBLIC)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(state["layers"][0]["shaderControls"]["normalized"]["range"],
                               coarsest_percentiles(vol), rtol=1e-6)


def test_big_scale_contrast_from_a_strided_sample(tmp_path, monkeypatch):
    """A coarsest scale over the sample limit: every stride-th voxel on each axis, the same
    voxels TensorStore gives for that stride."""
    from neurostation.visualize import volumes

    rng = np.random.default_rng(3)
    vol = make_volume(tmp_path, "big", rng.integers(0, 1000, size=(20, 100, 130), dtype=np.uint16),
                      "--levels", "0")
    monkeypatch.setattr(volumes, "CONTRAST_MAX_VALUES", 10_000)
    stride = int(np.ceil((130 * 100 * 20 / 10_000) ** (1 / 3)))
    sample = read_with_tensorstore(vol, 0)[::stride, ::stride, ::stride, 0]
    lo, hi = np.percentile(sample, [1, 99])
    assert stride == 3 and volumes.contrast(volumes.read_volume(vol)) == (np.floor(lo), np.ceil(hi))


def test_contrast_of_a_volume_with_unwritten_chunks(tmp_path, cli, image):
    """A chunk never written counts as background (zeros), as Neuroglancer and TensorStore show it."""
    sparse = tmp_path / "sparse"
    shutil.copytree(image, sparse)
    key = json.loads((sparse / "info").read_text())["scales"][-1]["key"]
    os.remove(sparse / key / sorted(os.listdir(sparse / key))[0])
    result, state, _ = view(cli, tmp_path, sparse, "--public-url", sparse, PUBLIC)
    assert result.returncode == 0, result.stderr
    lo, hi = coarsest_percentiles(sparse)
    assert lo == 0 and state["layers"][0]["shaderControls"]["normalized"]["range"] == [0, int(np.ceil(hi))]


def test_segmentation_detected_with_selected_segments(tmp_path, cli, labels):
    result, state, link = view(cli, tmp_path, labels, "--public-url", labels, PUBLIC,
                               "--segments", "9,7", "--viewer-url", "https://ng.example.org/view")
    assert result.returncode == 0, result.stderr
    assert state["layers"] == [{"type": "segmentation", "source": f"precomputed://{PUBLIC}",
                                "name": "labels", "segments": ["9", "7"]}]
    assert state["dimensions"]["x"] == [8e-9, "m"]
    assert link.startswith("https://ng.example.org/view#!") and decode(link) == state


def test_overlay_and_forced_segmentation(tmp_path, cli, image, labels):
    """A second image is a coloured additive overlay; --segmentation forces the layer type;
    a label volume at twice the voxel size lies on the same grid."""
    second = tmp_path / "second"
    os.symlink(image, second)
    result, state, _ = view(cli, tmp_path, image, second, "--segmentation", labels,
                            "--public-url", image, PUBLIC, "--public-url", second, PUBLIC + "2",
                            "--public-url", labels, PUBLIC + "3", "--name", "a", "--name", "a",
                            "--name", "seg")
    assert result.returncode == 0, result.stderr
    first, overlay, seg = state["layers"]
    assert [first["name"], overlay["name"], seg["name"]] == ["a", "a (2)", "seg"]
    assert "shader" not in first and "blend" not in first
    assert overlay["blend"] == "additive"
    assert "#uicontrol invlerp normalized" in overlay["shader"]
    assert re.search(r'#uicontrol vec3 color color\(default="#[0-9a-f]{6}"\)', overlay["shader"])
    assert overlay["shaderControls"] == first["shaderControls"]
    assert seg["type"] == "segmentation" and "shaderControls" not in seg


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_volume(image):
    """The image volume's folder on a plain HTTP server on loopback."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(image)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_json_reference_to_http_volume(tmp_path, cli, image, http_volume):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"url": http_volume}))
    result, state, _ = view(cli, tmp_path, ref)
    assert result.returncode == 0, result.stderr
    assert state["layers"][0]["source"] == f"precomputed://{http_volume}"
    lo, hi = coarsest_percentiles(image)
    assert state["layers"][0]["shaderControls"]["normalized"]["range"] == [int(np.floor(lo)), int(np.ceil(hi))]


def _refused(cli, tmp_path, *args):
    result, _, _ = view(cli, tmp_path, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not list(tmp_path.glob("state.json*")) and not list(tmp_path.glob("link.txt*"))
    return lines[0]


def test_missing_info(tmp_path, cli):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert "without a Neuroglancer precomputed 'info' file" in _refused(cli, tmp_path, folder)


@pytest.mark.parametrize("info, message", [
    ('{"type": "image", "scales": [', "malformed: not JSON"),
    ('{"type": "image", "data_type": "uint8", "num_channels": 1, "scales": []}', "malformed: no scales"),
    ('{"type": "mesh", "scales": []}', "malformed: type is 'mesh'"),
    ('{"type": "image", "data_type": "uint8", "num_channels": 1, "scales": [{"key": "a", '
     '"size": [4, 4], "resolution": [1, 1, 1]}]}', "scale 0 size is [4, 4], not three positive numbers"),
])
def test_malformed_info(tmp_path, cli, info, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "info").write_text(info)
    line = _refused(cli, tmp_path, folder, "--public-url", folder, PUBLIC)
    assert "the info file of file://" in line and message in line


def closed_port():
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_url(tmp_path, cli):
    port = closed_port()
    line = _refused(cli, tmp_path, f"http://127.0.0.1:{port}/vol")
    assert line.startswith(f"error: cannot reach volume http://127.0.0.1:{port}/vol")


def test_http_volume_without_info(tmp_path, cli, http_volume):
    line = _refused(cli, tmp_path, f"{http_volume}/no-such-volume")
    assert "has no 'info' file" in line


def test_incompatible_voxel_sizes(tmp_path, cli, image):
    other = make_volume(tmp_path, "other", np.ones((4, 16, 16), np.uint8), "--voxel-size", "6,6,40")
    line = _refused(cli, tmp_path, image, other, "--public-url", image, PUBLIC,
                    "--public-url", other, PUBLIC + "2")
    assert "image (4x4x40 nm) and other (6x6x40 nm) have incompatible voxel sizes" in line


def test_local_folder_needs_a_public_url_or_serve(tmp_path, cli, image):
    line = _refused(cli, tmp_path, image)
    assert f"is at file://{image}, which a browser cannot open" in line and "--serve" in line


@pytest.mark.parametrize("args, message", [
    (["--segments", "1,x"], "--segments must be positive integer ids"),
    (["--viewer-url", "file:///ng"], "--viewer-url file:///ng must be an http"),
    (["--name", "a", "--name", "b"], "--name given 2 times for 1 volumes"),
])
def test_bad_options(tmp_path, cli, image, args, message):
    assert message in _refused(cli, tmp_path, image, "--public-url", image, PUBLIC, *args)


# --- the local viewer -------------------------------------------------------------------


@pytest.fixture
def client(tmp_path):
    """A stand-in client folder (the server serves files; the browser test uses the real one)."""
    folder = tmp_path / "client"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><script type=module src=./viewer.js></script>")
    (folder / "viewer.js").write_text("console.log('viewer');")
    return folder


def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


def test_serve_gives_info_and_chunks_with_cors(tmp_path, image, labels, client):
    proc = subprocess.Popen(
        [sys.executable, "-m", "neurostation.cli", "view", "--serve", "--port", "0",
         "--client", str(client), str(image), "--segmentation", str(labels)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Neuroglancer: http://127.0.0.1:"), (line, proc.stderr.read())
        link = line.split(" ", 1)[1].strip()
        base = link.split("#", 1)[0].rstrip("/")
        state = decode(link)
        assert [layer["source"] for layer in state["layers"]] == [
            f"precomputed://{base}/volumes/0", f"precomputed://{base}/volumes/1"]

        status, headers, body = _get(f"{base}/volumes/0/info", {"Origin": "https://ng.example.org"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
        assert json.loads(body) == json.loads((image / "info").read_text())
        key = json.loads(body)["scales"][0]["key"]
        chunk = sorted(os.listdir(image / key))[0]
        status, headers, body = _get(f"{base}/volumes/0/{key}/{chunk}")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
        assert body == (image / key / chunk).read_bytes()
        status, headers, part = _get(f"{base}/volumes/0/{key}/{chunk}", {"Range": "bytes=4-11"})
        assert status == 206 and part == body[4:12]
        assert headers["Content-Range"] == f"bytes 4-11/{len(body)}"
        assert _get(f"{base}/volumes/1/info")[0] == 200
        assert _get(f"{base}/")[2] == (client / "index.html").read_bytes()
        assert _get(f"{base}/viewer.js")[1]["Content-Type"] == "text/javascript"
        assert _get(f"{base}/volumes/0/%2e%2e/%2e%2e/client/index.html")[0] == 404
        assert _get(f"{base}/volumes/2/info")[0] == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = proc.stdout.read().splitlines()
    assert proc.returncode == 0 and proc.stderr.read().strip().endswith("stopped")
    assert f"GET /volumes/0/{key}/{chunk} 200" in log and f"GET /volumes/0/{key}/{chunk} 206" in log


def test_serve_without_client_bundle(tmp_path, cli, image):
    result = cli("view", "--serve", image, "--client", tmp_path / "nothing")
    assert result.returncode == 2
    assert "no Neuroglancer client bundle" in result.stderr and "scripts/build-viewer" in result.stderr
