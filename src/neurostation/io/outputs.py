"""Outputs that appear complete or not at all: written under a temporary name, renamed at the end."""

import contextlib
import os

from ..errors import UserError
from .precomputed import ENCODINGS


def nifti_suffix(path):
    """The ending nibabel needs to write `path` as NIfTI: plain `.nii` only when asked for, else
    gzipped (Galaxy's dataset names end in `.dat`)."""
    return ".nii" if str(path).endswith(".nii") else ".nii.gz"


@contextlib.contextmanager
def staged(targets):
    """Yield {name: temporary path} for `targets` {name: (final path, ending)} (None entries are
    skipped); on success rename every file to its final path, on any error remove them all."""
    temps = {name: f"{path}.part{ending}" for name, (path, ending) in targets.items()
             if path is not None}
    try:
        yield temps
        for name, temp in temps.items():
            os.replace(temp, targets[name][0])
    except OSError as exc:
        _remove(temps.values())
        outputs = {os.path.abspath(p) for p in [*temps.values(), *(t[0] for t in targets.values())]
                   if p is not None}
        if isinstance(exc.filename, str) and os.path.abspath(exc.filename) not in outputs:
            # an input that went missing (e.g. on a Dask worker) is not an output's fault
            raise UserError(f"{exc.strerror}: {exc.filename}") from None
        raise UserError(f"cannot write the outputs: {exc}") from None
    except BaseException:
        _remove(temps.values())
        raise


@contextlib.contextmanager
def staged_file(path, ending=""):
    """Yield the temporary name of one output (see `staged`)."""
    with staged({"out": (path, ending)}) as temps:
        yield temps["out"]


def _remove(paths):
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def check_tiff_options(args, encoding="raw"):
    """Refuse precomputed-only options (--chunk-size, --levels, --reference, an --encoding other
    than the command's default `encoding`) when the output is a TIFF."""
    if output_format(args) == "tiff":
        given = [o for o in ("chunk_size", "levels", "reference") if getattr(args, o) is not None]
        if given or args.encoding != encoding:
            option = "--" + (given[0] if given else "encoding").replace("_", "-")
            raise UserError(f"{option} applies to precomputed output; {args.output} is a TIFF "
                            "(give a folder or URL, or --format precomputed)")


def output_format(args):
    """tiff or precomputed: --format, else from the output's name (.tif/.tiff is a TIFF)."""
    if args.format:
        return args.format
    name = str(args.output).lower()
    return "tiff" if "://" not in name and name.endswith((".tif", ".tiff")) else "precomputed"


def add_volume_options(p, encodings=ENCODINGS[:2], default="raw"):
    """--mip of a precomputed input and the options of a precomputed output (chunking,
    `encodings` with its `default`, pyramid levels, JSON reference)."""
    p.add_argument("--mip", type=int, default=0, help="precomputed input: the scale to read")
    p.add_argument("--chunk-size", metavar="X,Y,Z",
                   help="precomputed: chunk size in voxels (default 64,64,64, or 128,128,64 "
                   "for anisotropic voxels)")
    p.add_argument("--encoding", choices=encodings, default=default,
                   help=f"precomputed: chunk encoding, {' or '.join(encodings)} (default {default})")
    p.add_argument("--levels", type=int,
                   help="precomputed: number of downsampled scales (default: until x and y fit "
                   "in one chunk)")
    p.add_argument("--reference", metavar="JSON",
                   help="precomputed: also write a JSON reference {\"url\": ...} to the volume here")
