"""Any volume our readers open — TIFF, OME-TIFF, NIfTI, precomputed folder, URL or JSON
reference — as a box source: shape (x, y, z), channels, dtype, voxel size in nm, read(box)."""

import os
import tempfile

import numpy as np

from ..chunks.boxes import Box
from ..errors import UserError
from ..io.detect import detect_format
from ..io.precomputed import open_complete
from ..io.sources import open_source
from ..storage.write import VolumeSource
from ..units import convert
from .volumes import read_volume


class PrecomputedSource(VolumeSource):
    """One scale of a complete precomputed volume, read box by box (chunk-aligned boxes)."""

    def __init__(self, path, mip):
        read_volume(path)  # its info checked first: missing, malformed or unreachable in one line
        vol = open_complete(path, mip)
        super().__init__(vol.cloudpath, mip)
        scale = vol.info["scales"][mip]
        self.shape = tuple(int(n) for n in scale["size"])
        self.chunk = tuple(int(n) for n in scale["chunk_sizes"][0])
        self.channels = int(vol.info["num_channels"])
        self.dtype = np.dtype(vol.info["data_type"])
        self.voxel_nm = tuple(float(r) for r in scale["resolution"])
        self.offset = tuple(int(n) for n in scale.get("voxel_offset", (0, 0, 0)))

    def read(self, box):
        """A box counted from the volume's first voxel (its voxel_offset added)."""
        if any(self.offset):
            box = Box(*(tuple(a + o for a, o in zip(p, self.offset)) for p in (box.start, box.stop)))
        return super().read(box)


def display_name(path):
    """The file or folder name a caption shows for an input."""
    return os.path.basename(str(path).rstrip("/")) or str(path)


def open_volume_source(path, workdir, mip=0, name=None):
    """A box source for `path` with `.name` and `.voxel_nm` (None when the file records no
    voxel size); `mip` picks a scale of a precomputed volume and is refused for files."""
    name = name or display_name(path)
    kind = detect_format(path)
    if kind in ("precomputed", "reference"):
        source = PrecomputedSource(path, mip)
    else:
        if mip:
            raise UserError(f"--mip applies to precomputed volumes; {name} is a {kind} file")
        # a folder of its own: a gzipped NIfTI is unpacked there under a fixed name
        source = open_source([path], [name], tempfile.mkdtemp(dir=workdir))
        source.chunk = (source.shape[0], source.shape[1], 1)  # whole planes: strips, slabs
        source.voxel_nm = file_voxel_nm(source)
    source.name = name
    return source


def file_voxel_nm(source):
    """A file's voxel size in nm; a single plane without a z spacing (a 2D TIFF) gets its x
    size as z; None when the file records no size."""
    size = source.voxel_size
    if size is not None and size[2] is None and None not in size[:2] and source.shape[2] == 1:
        size = (size[0], size[1], size[0])
    if size is None or None in size:
        return None
    return convert(size, source.voxel_unit, "nm")


def check_channel(source, channel):
    """Refuse a channel index the source does not have."""
    if not 0 <= channel < source.channels:
        raise UserError(f"--channel {channel} does not exist: {source.name} has "
                        f"{source.channels} channel(s), 0 to {source.channels - 1}")
