"""Recognise an input by its content (Galaxy names every dataset `*.dat`), not its name."""

import gzip
import json
import os

from ..errors import UserError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
NIFTI1_MAGIC = (b"n+1\x00", b"ni1\x00")


def _nifti_magic(head):
    return len(head) >= 348 and head[344:348] in NIFTI1_MAGIC


def detect_format(path):
    """Return 'tiff', 'nifti', 'precomputed' or 'reference' for a file, folder or URL."""
    path = str(path)
    if "://" in path:
        return "precomputed"
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "info")):
            return "precomputed"
        raise UserError(f"{path} is a folder without a Neuroglancer precomputed 'info' file")
    if not os.path.isfile(path):
        raise UserError(f"input {path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(352)
    if not head:
        raise UserError(f"input {os.path.basename(path)} is empty")
    if head[:4] in TIFF_MAGIC:
        return "tiff"
    if _nifti_magic(head):
        return "nifti"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                if _nifti_magic(handle.read(352)):
                    return "nifti"
        except (OSError, EOFError):
            pass
    if head.lstrip()[:1] == b"{":
        try:
            with open(path, encoding="utf-8") as handle:
                if isinstance(json.load(handle).get("url"), str):
                    return "reference"
        except (ValueError, UnicodeDecodeError, AttributeError):
            pass
    raise UserError(
        f"{os.path.basename(path)} is not a TIFF, NIfTI-1 or Neuroglancer precomputed volume "
        f"(it starts with {head[:8]!r})"
    )


def read_reference(path):
    """Return the volume URL held by a JSON volume reference (`{"url": "s3://..."}`)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["url"]
