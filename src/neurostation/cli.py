"""The one entry point: `neurostation <command> ...`, shared by Galaxy, GenePattern and the shell.

User errors print one line `error: ...` on stderr and exit 2; anything else is a bug and
keeps its traceback (exit 1).
"""

import argparse
import gc
import importlib
import sys

from . import __version__
from .chunks.pool import use_scheduler
from .errors import UserError

# Every command and the module defining it (add_parser, run), in the order of the stages. Only
# the module of the command being run is imported, so a command does not pay for loading every
# library of the suite; the full list is built for the overview help.
COMMANDS = {
    "ingest": "ingest.volume", "stitch": "ingest.stitch", "align": "ingest.align",
    "info": "storage.info", "cutout": "storage.cutout", "pyramid": "storage.pyramid",
    "register": "processing.register", "filter": "processing.filter",
    "label": "processing.label", "threshold": "processing.threshold",
    "classify": "processing.classify",
    "predict": "processing.predict", "blobs": "processing.blobs",
    "fmri-timeseries": "analysis.fmri.timeseries", "connectivity": "analysis.fmri.connectivity",
    "graph-metrics": "analysis.fmri.graph", "decompose": "analysis.fmri.decompose",
    "seed-map": "analysis.fmri.seedmap",
    "measure": "analysis.objects.measure", "adjacency": "analysis.objects.adjacency",
    "classify-objects": "analysis.objects.classify_objects",
    "count": "analysis.objects.count", "compare": "analysis.objects.compare",
    "view": "visualize.view", "qc": "visualize.qc",
    "mesh": "visualize.mesh",
}


class Parser(argparse.ArgumentParser):
    """argparse with our error convention: one `error:` line, exit 2."""

    def error(self, message):
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser(argv=None):
    """The parser of every command, or only of the command `argv` names."""
    wanted = next((str(a) for a in argv or () if not str(a).startswith("-")), None)
    wanted = wanted if wanted in COMMANDS else None
    parser = Parser(
        prog="neurostation",
        description="NeuroStation: big brain and bio image data from microscope or scanner "
        "to volumes, numbers and 3D views. Positions and sizes are x, y, z; voxel sizes X,Y,Z "
        "with an explicit unit.",
    )
    parser.add_argument("--version", action="version", version=f"neurostation {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        if wanted in (None, name):
            importlib.import_module(f".{module}", __package__).add_parser(sub)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        use_scheduler(getattr(args, "scheduler", None))
        try:
            args.func(args)
        finally:  # a process calling main() again, or the API, keeps no stale cluster address
            use_scheduler(None)
    except UserError as exc:
        message = " ".join(str(exc).split())  # always exactly one line
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def entry():
    """The `neurostation` command: main(), then exit without the interpreter's last garbage
    collection walking every object of the loaded libraries (0.25 s of a 1.7 s label run);
    callers of main() in a longer-lived process keep their collections."""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
