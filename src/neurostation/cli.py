"""The one entry point: `neurostation <command> ...`, shared by Galaxy, GenePattern and the shell.

User errors print one line `error: ...` on stderr and exit 2; anything else is a bug and
keeps its traceback (exit 1).
"""

import argparse
import sys

from . import __version__
from .analysis.fmri import connectivity, decompose, graph, seedmap, timeseries
from .analysis.objects import adjacency, measure
from .chunks.pool import use_scheduler
from .errors import UserError
from .ingest import align, stitch
from .ingest import volume as ingest_volume
from .processing import filter as filter_image
from .processing import label, register, threshold
from .storage import cutout, info, pyramid
from .visualize import mesh, qc, view

# One module per command, in the order of the stages; each has add_parser(subparsers).
COMMANDS = (ingest_volume, stitch, align, info, cutout, pyramid,
            register, filter_image, label, threshold,
            timeseries, connectivity, graph, decompose, seedmap,
            measure, adjacency,
            view, qc, mesh)


class Parser(argparse.ArgumentParser):
    """argparse with our error convention: one `error:` line, exit 2."""

    def error(self, message):
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser():
    parser = Parser(
        prog="neurostation",
        description="NeuroStation: big brain and bio image data from microscope or scanner "
        "to volumes, numbers and 3D views. Positions and sizes are x, y, z; voxel sizes X,Y,Z "
        "with an explicit unit.",
    )
    parser.add_argument("--version", action="version", version=f"neurostation {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        use_scheduler(getattr(args, "scheduler", None))
        args.func(args)
    except UserError as exc:
        message = " ".join(str(exc).split())  # always exactly one line
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
