"""The volumes of a view: where each is, what its `info` says, and a default contrast.

`info` is read and checked here (a viewer link to a volume whose `info` is missing or broken
would open an empty view); the contrast comes from the coarsest scale, read with our reader.
"""

import json
import os
import urllib.error
import urllib.request

import numpy as np

from ..errors import UserError
from ..io.precomputed import cloud_files, open_volume, resolve_volume

# Schemes a browser's Neuroglancer reads by itself (a local folder or file:// it cannot).
BROWSER_SCHEMES = ("http", "https", "s3", "gs")
# Seconds to wait for an http(s) volume's `info` (one try: an unreachable server fails fast).
HTTP_TIMEOUT = 20
# Values sampled for the contrast: the coarsest scale when it is at most this large, else an
# evenly strided sample of it.
CONTRAST_MAX_VALUES = 1 << 24
# x/y edge (voxels) of one read of the contrast sample.
TILE = 512
# Contrast range: these percentiles of the coarsest scale's values.
CONTRAST_PERCENTILES = (1, 99)


class Volume:
    """One volume to show: its URL (as read here), its checked `info` and a display name."""

    def __init__(self, url, info, name):
        self.url, self.info, self.name = url, info, name
        finest = info["scales"][0]
        self.resolution = [float(r) for r in finest["resolution"]]
        self.size = [int(n) for n in finest["size"]]
        self.offset = [int(n) for n in finest.get("voxel_offset", (0, 0, 0))]

    @property
    def is_local(self):
        return self.url.startswith("file://")

    @property
    def folder(self):
        return self.url[len("file://"):]


def _fetch(url, name):
    """Bytes of the file `name` of the volume at `url`, or None when it does not exist."""
    if url.split("://", 1)[0] in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/{name}", timeout=HTTP_TIMEOUT) as rsp:
                return rsp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise UserError(f"cannot read {url}/{name}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"cannot reach volume {url}: {reason}") from None
    try:
        return cloud_files(url).get(name)
    except Exception as exc:  # storage back ends raise their own types (botocore, google, OS)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot reach volume {url}: {detail}") from None


def _check_info(info, url):
    """Refuse an `info` that Neuroglancer could not show (one line naming the problem)."""
    def bad(what):
        return UserError(f"the info file of {url} is malformed: {what}")

    if not isinstance(info, dict):
        raise bad("not a JSON object")
    if info.get("type") not in ("image", "segmentation"):
        raise bad(f"type is {info.get('type')!r}, not 'image' or 'segmentation'")
    if not isinstance(info.get("data_type"), str) or not isinstance(info.get("num_channels"), int):
        raise bad("data_type or num_channels missing")
    scales = info.get("scales")
    if not isinstance(scales, list) or not scales:
        raise bad("no scales")
    for i, scale in enumerate(scales):
        if not isinstance(scale, dict) or not isinstance(scale.get("key"), str):
            raise bad(f"scale {i} has no key")
        for field in ("size", "resolution"):
            values = scale.get(field)
            if (not isinstance(values, list) or len(values) != 3
                    or not all(isinstance(v, (int, float)) and v > 0 for v in values)):
                raise bad(f"scale {i} {field} is {values!r}, not three positive numbers")


def read_volume(spec, name=None):
    """A Volume for `spec` (folder, URL or JSON reference) with its `info` read and checked."""
    url = resolve_volume(spec)
    raw = _fetch(url, "info")
    if raw is None:
        raise UserError(f"{url} has no 'info' file: it is not a Neuroglancer precomputed volume")
    try:
        info = json.loads(raw)
    except ValueError:
        raise UserError(f"the info file of {url} is malformed: not JSON") from None
    _check_info(info, url)
    return Volume(url, info, name or os.path.basename(url.rstrip("/")) or url)


def contrast(volume):
    """(lo, hi): the CONTRAST_PERCENTILES of channel 0 of the coarsest scale, as numbers of the
    volume's data type (integers widened outwards, hi > lo), for Neuroglancer's invlerp."""
    scale = volume.info["scales"][-1]
    vol = open_volume(volume.url, mip=len(volume.info["scales"]) - 1)
    vol.fill_missing = True  # a chunk never written is background, as Neuroglancer shows it
    values = np.concatenate(list(_sample(vol, scale["chunk_sizes"][0][2])))
    lo, hi = (float(v) for v in np.percentile(values, CONTRAST_PERCENTILES))
    if np.issubdtype(values.dtype, np.integer):
        limits = np.iinfo(values.dtype)
        lo, hi = int(np.floor(lo)), int(np.ceil(hi))
        if hi <= lo:
            lo, hi = (lo - 1, hi) if hi >= limits.max else (lo, hi + 1)
    elif hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _sample(vol, chunk_z):
    """Channel-0 values of the whole scale `vol`, or of every `stride`-th voxel on each axis when
    it has more than CONTRAST_MAX_VALUES, read tile by tile (memory: one TILE² x chunk_z block;
    a strided sample reads only its planes)."""
    start, stop = [int(v) for v in vol.bounds.minpt], [int(v) for v in vol.bounds.maxpt]
    total = float(np.prod([b - a for a, b in zip(start, stop)]))
    stride = max(1, int(np.ceil((total / CONTRAST_MAX_VALUES) ** (1 / 3))))
    tile = max(stride, TILE - TILE % stride)
    depth = stride if stride > 1 else max(1, int(chunk_z))
    for z in range(start[2], stop[2], depth):
        z1 = z + 1 if stride > 1 else min(z + depth, stop[2])
        for y in range(start[1], stop[1], tile):
            for x in range(start[0], stop[0], tile):
                block = np.asarray(vol[x:min(x + tile, stop[0]), y:min(y + tile, stop[1]), z:z1])
                yield block[::stride, ::stride, :, 0].ravel()
