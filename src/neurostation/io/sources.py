"""Image sources read by region: a TIFF stack, a list of 2D slices, a NIfTI volume.

Every source gives its shape (x, y, z), channels, dtype, voxel size with unit, and
`read(box)` -> an (x, y, z, c) array of just that box. TIFFs whose pixels are stored
uncompressed in one run are memory-mapped (4x faster than decoding); others are read through
tifffile's zarr view, which decodes only the strips or tiles a box touches.
"""

import gzip
import os
import re
import shutil
import tempfile
import zipfile

import numpy as np
import tifffile

from ..errors import UserError
from .detect import detect_format
from .tiff import describe_tiff, open_tiff


def natural_key(name):
    """Sort key that puts slice_2 before slice_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def zarr_view(tif):
    """A TIFF's first series as a read-only zarr array: slicing decodes only what it touches."""
    import zarr

    return zarr.open(tif.aszarr(), mode="r")


def _to_xyzc(zyx, channels):
    """(z, y, x[, c]) C-ordered -> (x, y, z, c) Fortran-ordered, the same memory (no copy)."""
    if channels == 1 and zyx.ndim == 3:
        zyx = zyx[..., None]
    if channels > 1:  # (z, y, x, c): make c the slowest axis so the result is Fortran-ordered
        return np.asfortranarray(np.transpose(zyx, (2, 1, 0, 3)))
    return np.transpose(zyx, (2, 1, 0, 3))


class TiffStack:
    """One TIFF (multi-page, ImageJ or OME) holding a z-stack, optionally RGB samples."""

    def __init__(self, path, name):
        self.path, self.name = path, name
        facts = describe_tiff(path)
        axes = facts["axes"].upper().replace("Q", "Z").replace("I", "Z")
        if axes not in ("YX", "ZYX", "YXS", "ZYXS"):
            raise UserError(f"{name} has axes {facts['axes']}; ingest takes z-stacks (ZYX, "
                            "optionally RGB samples)")
        dims = dict(zip(axes, facts["shape"]))
        self.axes = axes
        self.shape = (dims["X"], dims["Y"], dims.get("Z", 1))
        self.channels = dims.get("S", 1)
        self.dtype = np.dtype(facts["dtype"])
        self.voxel_size, self.voxel_unit = facts["voxel_size"], facts["voxel_unit"]
        self.extra = {}
        self.stored = facts["shape"], facts["data_offset"], self.dtype.newbyteorder(facts["byteorder"])

    def read(self, box):
        shape, offset, dtype = self.stored
        if offset is not None:
            # a copy, not a view: a view keeps the file's pages mapped (and counted in the
            # process's memory) as long as any array derived from it lives
            mapped = np.memmap(self.path, dtype, mode="r", offset=offset, shape=shape)
            region = np.array(self._region(mapped, box)).astype(self.dtype, copy=False)
        else:
            with open_tiff(self.path, check=False) as tif:  # checked by describe_tiff
                region = np.asarray(self._region(zarr_view(tif), box))
        return _to_xyzc(region, self.channels)

    def _region(self, arr, box):
        """The box of the stored (z, y, x[, s]) array (a 2D image is one plane)."""
        (x0, y0, z0), (x1, y1, z1) = box.start, box.stop
        return arr[z0:z1, y0:y1, x0:x1] if "Z" in self.axes else arr[y0:y1, x0:x1][None]


class SliceList:
    """A z-stack given as one 2D TIFF per plane, in the order given."""

    def __init__(self, paths, names):
        self.paths, self.names = paths, names
        first = describe_tiff(paths[0])
        for path, name in zip(paths, names):
            facts = first if path == paths[0] else describe_tiff(path)
            if facts["axes"].upper() not in ("YX", "YXS"):
                raise UserError(f"slice {name} has axes {facts['axes']}; slices must be 2D images")
            if facts["shape"] != first["shape"] or facts["dtype"] != first["dtype"]:
                raise UserError(
                    f"slice {name} is {'x'.join(map(str, facts['shape']))} {facts['dtype']} but "
                    f"{names[0]} is {'x'.join(map(str, first['shape']))} {first['dtype']}: "
                    "all slices must have the same shape and data type")
        self.shape = (first["shape"][1], first["shape"][0], len(paths))
        self.channels = first["shape"][2] if len(first["shape"]) == 3 else 1
        self.dtype = np.dtype(first["dtype"])
        self.voxel_size, self.voxel_unit = first["voxel_size"], first["voxel_unit"]
        self.extra = {}

    def read(self, box):
        (x0, y0, z0), (x1, y1, z1) = box.start, box.stop
        planes = []
        for path in self.paths[z0:z1]:
            with open_tiff(path, check=False) as tif:
                planes.append(np.asarray(zarr_view(tif)[y0:y1, x0:x1]))
        return _to_xyzc(np.stack(planes), self.channels)


class NiftiVolume:
    """A 3D NIfTI-1 image (gzip is unpacked once to a temporary file so boxes are memory-mapped).
    nibabel is imported only here: it costs every other command 60 ms of start-up."""

    def __init__(self, path, name, workdir):
        from .nifti import describe_nifti

        self.name = name
        facts = describe_nifti(path)
        if len(facts["shape"]) > 3 and any(n > 1 for n in facts["shape"][3:]):
            raise UserError(f"{name} is a 4D NIfTI {facts['shape']}; ingest takes 3D volumes")
        with open(path, "rb") as handle:
            packed = handle.read(2) == b"\x1f\x8b"
        if packed:
            plain = os.path.join(workdir, "volume.nii")
            with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
            path = plain
        self.path = path
        self.shape = tuple(facts["shape"][:3]) + (1,) * (3 - len(facts["shape"][:3]))
        self.channels = 1
        self.dtype = np.dtype(facts["dtype"])
        self.voxel_size, self.voxel_unit = facts["voxel_size"], facts["voxel_unit"]
        self.extra = {"source_affine": facts["affine"], "source_unit": facts["voxel_unit"]}

    def read(self, box):
        from .nifti import load_nifti

        img = load_nifti(self.path)
        region = np.asanyarray(img.dataobj[box.slices()[0], box.slices()[1], box.slices()[2]])
        region = region.reshape(box.shape)
        return region[..., None].astype(self.dtype, copy=False)


def _safe_extract(archive, workdir):
    """Extract a zip's TIFF slices into workdir; refuse members that would land outside it."""
    root = os.path.realpath(os.path.join(workdir, "slices"))
    paths = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = os.path.realpath(os.path.join(root, info.filename))
                if not target.startswith(root + os.sep):
                    raise UserError(f"zip entry {info.filename!r} points outside the archive's "
                                    "folder; refusing to extract it")
                if info.is_dir() or os.path.basename(info.filename).startswith("."):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                paths.append(target)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{os.path.basename(archive)} is not a valid zip archive: {exc}") from None
    if not paths:
        raise UserError(f"zip archive {os.path.basename(archive)} holds no files")
    return paths


def open_source(inputs, names, workdir):
    """The source behind the ingest inputs: one stack file, a zip of slices, or 2D slices."""
    if not inputs:
        raise UserError("no input images given")
    if names and len(names) != len(inputs):
        raise UserError(f"--names gives {len(names)} names for {len(inputs)} inputs")
    names = list(names) if names else [os.path.basename(p) for p in inputs]
    # absolute: box tasks may run on Dask workers, whose working folder is not ours
    inputs = [os.path.abspath(p) for p in inputs]
    if len(inputs) == 1 and os.path.isdir(inputs[0]):
        folder = inputs[0]
        inputs = [os.path.join(folder, f) for f in os.listdir(folder) if not f.startswith(".")]
        if not inputs:
            raise UserError(f"folder {folder} holds no images")
        names = [os.path.basename(p) for p in inputs]
    if len(inputs) == 1 and zipfile.is_zipfile(inputs[0]):
        inputs = _safe_extract(inputs[0], workdir)
        names = [os.path.relpath(p, os.path.join(workdir, "slices")) for p in inputs]
    if len(inputs) == 1:
        kind = detect_format(inputs[0])
        if kind == "tiff":
            return TiffStack(inputs[0], names[0])
        if kind == "nifti":
            return NiftiVolume(inputs[0], names[0], workdir)
        raise UserError(f"{names[0]} is already a precomputed volume; use it directly")
    order = sorted(range(len(inputs)), key=lambda i: natural_key(names[i]))
    for i in order:
        if detect_format(inputs[i]) != "tiff":
            raise UserError(f"slice {names[i]} is not a TIFF image")
    return SliceList([inputs[i] for i in order], [names[i] for i in order])


def workdir():
    """A private temporary folder for unpacked inputs (removed by the caller)."""
    return tempfile.mkdtemp(prefix="neurostation-")
