"""Neuroglancer precomputed volumes through cloud-volume, readable by TensorStore and Neuroglancer.

Chunks are written uncompressed (`compress=False`): cloud-volume's default gzips them and
names them `*.gz`, which TensorStore then silently reads as zeros (DESIGN.md §3).
A volume is complete only when its completion record (`neurostation.json`) exists; it is
written last, so an interrupted run is never mistaken for a finished volume.
"""

import json
import os

import numpy as np

from .. import __version__
from ..errors import UserError

RECORD = "neurostation.json"
ENCODINGS = ("raw", "jpeg", "compressed_segmentation")
SEGMENTATION_ENCODINGS = ("raw", "compressed_segmentation")
# Label volumes: Neuroglancer's encoding for segmentations, some 40 times smaller than raw and
# faster to write (fewer bytes through the page cache).
LABEL_ENCODING = "compressed_segmentation"


def to_url(path_or_url):
    """A cloud-volume URL for a local folder, file:// URL or cloud URL (scheme checked)."""
    from cloudfiles import paths

    paths.update_aliases_from_file()  # protocol aliases for S3-compatible servers
    text = str(path_or_url)
    if text.startswith("precomputed://"):
        text = text[len("precomputed://"):]
    if "://" not in text:
        return "file://" + os.path.abspath(text)
    scheme = text.split("://", 1)[0]
    if scheme not in paths.ALLOWED_PROTOCOLS:
        raise UserError(f"unsupported volume URL scheme {scheme}:// in {text}: use a folder or "
                        f"one of {', '.join(p + '://' for p in paths.ALLOWED_PROTOCOLS[:4])}")
    return text


def cloud_files(url):
    """cloud-files access to the folder or bucket at `url`. Local folders are written from the
    calling thread: cloud-files' thread pool polls its queue every 0.1 s, which cost more than
    the writes themselves (about 1 s of a 4 s label run); processes give the parallelism."""
    from cloudfiles import CloudFiles

    return CloudFiles(url, num_threads=0) if url.startswith("file://") else CloudFiles(url)


def open_volume(path_or_url, mip=0):
    """Open an existing volume read-only, with a clear error when it is not one."""
    from cloudvolume import CloudVolume
    from cloudvolume.exceptions import InfoUnavailableError

    url = to_url(path_or_url)
    try:
        return CloudVolume(url, mip=mip, fill_missing=False, progress=False, bounded=True)
    except (InfoUnavailableError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"cannot open precomputed volume {url}: {exc}") from None


def resolve_volume(path_or_url):
    """The URL of a volume given as a folder, a URL or a JSON reference file."""
    from .detect import detect_format, read_reference

    if "://" not in str(path_or_url) and detect_format(path_or_url) == "reference":
        return to_url(read_reference(path_or_url))
    return to_url(path_or_url)


def open_complete(path_or_url, mip=0, option="--mip"):
    """Open a volume for reading, refusing one whose writer did not finish; `option` names
    the command's scale option in the message about a scale that does not exist."""
    url = resolve_volume(path_or_url)
    vol = open_volume(url)
    if not read_record(url):
        raise UserError(f"volume {url} is incomplete (no {RECORD}): the run that wrote it was "
                        "interrupted; re-run it with the same arguments to finish it")
    if not 0 <= mip < len(vol.info["scales"]):
        raise UserError(f"{option} {mip} does not exist: the volume has scales 0 to "
                        f"{len(vol.info['scales']) - 1}")
    vol.mip = mip
    return vol


def read_record(url):
    """The completion record of a volume, or None when the volume is incomplete."""
    raw = cloud_files(to_url(url)).get(RECORD)
    return json.loads(raw) if raw else None


def write_record(url, **facts):
    """Write the completion record (last step of every writer)."""
    record = {"complete": True, "neurostation_version": __version__, **facts}
    cloud_files(to_url(url)).put(RECORD, json.dumps(record, indent=1).encode(), compress=None,
                                 content_type="application/json")


def _write_error(url, exc):
    """The one-line error for a destination that refuses writes (any storage back end)."""
    detail = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
    return UserError(f"cannot write a volume at {url}: {detail}")


def check_writable(url):
    """Write and delete a small probe at `url`, so a long run learns at its start that its
    destination refuses writes (a missing bucket, a read-only folder)."""
    probe = ".neurostation-write-probe"
    try:
        files = cloud_files(to_url(url))
        files.put(probe, b"", compress=None)
        files.delete(probe)
    except Exception as exc:  # storage back ends raise their own types (botocore, google, OS)
        raise _write_error(url, exc) from None


def create_volume(url, shape_xyz, dtype, voxel_size_nm, num_channels=1, layer_type="image",
                  encoding="raw", chunk_size=(64, 64, 64), factors=()):
    """Write the info of a volume with a scale per cumulative factor; return it writable."""
    from cloudvolume import CloudVolume

    chunk = [int(min(c, n)) for c, n in zip(chunk_size, shape_xyz)]
    info = CloudVolume.create_new_info(
        num_channels=num_channels, layer_type=layer_type, data_type=str(np.dtype(dtype)),
        encoding=encoding, resolution=[float(v) for v in voxel_size_nm], voxel_offset=[0, 0, 0],
        volume_size=[int(n) for n in shape_xyz], chunk_size=chunk,
    )
    try:
        vol = CloudVolume(to_url(url), info=info, compress=False, progress=False)
        for factor in factors:
            vol.meta.add_scale(factor, encoding=encoding, chunk_size=chunk)
        if encoding == "compressed_segmentation":
            for scale in vol.info["scales"]:
                scale["compressed_segmentation_block_size"] = [8, 8, 8]
        cloud_files(vol.cloudpath).delete(RECORD)  # incomplete until written again
        vol.commit_info()
    except Exception as exc:  # storage back ends raise their own types (botocore, google, OS)
        raise _write_error(url, exc) from None
    return vol


def check_encoding(encoding, dtype, channels, layer_type):
    """Refuse encodings that cannot hold this data (one line saying what to use instead)."""
    dtype = np.dtype(dtype)
    if encoding == "jpeg" and (dtype != np.uint8 or channels not in (1, 3)):
        raise UserError(f"jpeg encoding takes uint8 images with 1 or 3 channels, not "
                        f"{dtype} with {channels} channels: use --encoding raw")
    if encoding == "compressed_segmentation" and (
            layer_type != "segmentation" or dtype not in (np.uint32, np.uint64)):
        raise UserError("compressed_segmentation encoding takes uint32/uint64 labels with "
                        "--layer-type segmentation")


_SCALES = {}


def write_box(url, mip, box, data):
    """Write an (x, y, z, c) block at `box` of scale `mip`: each chunk encoded and stored
    under its Neuroglancer name, uncompressed (the box is chunk-aligned or ends at the edge)."""
    from cloudvolume.chunks import encode

    if (url, mip) not in _SCALES:  # the scale's layout, read once per process
        info = json.loads(cloud_files(url).get("info"))
        _SCALES[(url, mip)] = info["scales"][mip]
    scale = _SCALES[(url, mip)]
    chunk, size = scale["chunk_sizes"][0], scale["size"]
    block_size = scale.get("compressed_segmentation_block_size")
    files = []
    for x0 in range(box.start[0], box.stop[0], chunk[0]):
        for y0 in range(box.start[1], box.stop[1], chunk[1]):
            for z0 in range(box.start[2], box.stop[2], chunk[2]):
                start = (x0, y0, z0)
                stop = tuple(min(a + c, n) for a, c, n in zip(start, chunk, size))
                part = data[tuple(slice(a - b, e - b) for a, e, b in zip(start, stop, box.start))]
                name = "_".join(f"{a}-{e}" for a, e in zip(start, stop))
                # the encoders lay out the (non-contiguous) part themselves
                files.append((f"{scale['key']}/{name}", encode(part, scale["encoding"], block_size)))
    cloud_files(url).puts(files, compress=None, content_type="application/octet-stream")


def describe_precomputed(path_or_url):
    """Scales, chunking, encoding, bounds and completion state of a precomputed volume."""
    vol = open_volume(path_or_url)
    info = vol.info
    scales = [
        {
            "key": s["key"],
            "resolution": [float(r) for r in s["resolution"]],
            "size": [int(n) for n in s["size"]],
            "chunk_size": [int(n) for n in s["chunk_sizes"][0]],
            "encoding": s["encoding"],
            "voxel_offset": [int(n) for n in s.get("voxel_offset", [0, 0, 0])],
        }
        for s in info["scales"]
    ]
    record = read_record(vol.cloudpath)
    return {
        "format": "precomputed",
        "axes": "XYZC",
        "shape": tuple(scales[0]["size"]) + (int(info["num_channels"]),),
        "dtype": info["data_type"],
        "voxel_size": tuple(scales[0]["resolution"]),
        "voxel_unit": "nm",
        "layer_type": info["type"],
        "scales": scales,
        "complete": bool(record and record.get("complete")),
        "url": vol.cloudpath,
    }


def iter_volume_blocks(path_or_url, mip, slab=64):
    """Yield z-slabs of one scale of a volume (memory: one slab)."""
    vol = open_volume(path_or_url, mip=mip)
    bounds = vol.bounds
    for z0 in range(bounds.minpt[2], bounds.maxpt[2], slab):
        z1 = min(z0 + slab, bounds.maxpt[2])
        yield np.asarray(vol[bounds.minpt[0]:bounds.maxpt[0], bounds.minpt[1]:bounds.maxpt[1], z0:z1])
