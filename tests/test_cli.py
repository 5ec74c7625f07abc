"""The CLI's conventions: --version, --help everywhere, one-line errors (exit 2), bugs exit 1."""

import subprocess
import sys

import pytest

from neurostation import __version__
from neurostation.cli import COMMANDS, build_parser


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"neurostation {__version__}"


def _command_names():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_command_is_registered():
    assert _command_names() == sorted(COMMANDS)


def test_a_command_imports_only_its_own_module(data):
    """`info` runs without loading the fMRI, object or viewer commands and their libraries."""
    code = ("import sys\nfrom neurostation.cli import main\n"
            f"assert main(['info', {data('stack.ome.tif')!r}]) == 0\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('neurostation.', "
            "'nilearn', 'networkx', 'pandas')))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "neurostation.storage.info" in loaded
    assert not [m for m in loaded if m.startswith(("neurostation.analysis", "neurostation.visualize",
                                                   "nilearn", "networkx", "pandas"))], loaded


@pytest.mark.parametrize("command", _command_names())
def test_help_on_every_command(cli, command):
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "usage: neurostation " + command in result.stdout
    assert "example:" in result.stdout


def test_unknown_option_is_one_error_line(cli):
    result = cli("info", "--bogus", "x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: unrecognized arguments: --bogus")


def test_missing_command_prints_help(cli):
    result = cli()
    assert result.returncode == 2
    assert "usage: neurostation" in result.stderr


def test_user_error_is_one_line_exit_2(cli, data):
    result = cli("info", data("not_an_image.txt"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: not_an_image.txt is not a TIFF, NIfTI-1 or Neuroglancer precomputed volume "
        "(it starts with b'x\\ty\\n1\\t2\\n')"
    ]


def test_internal_bug_keeps_traceback_exit_1(data):
    code = (
        "import sys, neurostation.storage.info as info\n"
        "def boom(args): raise RuntimeError('a bug')\n"
        "info.run = boom\n"
        "from neurostation.cli import main\n"
        f"sys.exit(main(['info', {data('stack.ome.tif')!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: a bug" in result.stderr
    assert "error:" not in result.stderr.splitlines()[-1][:6]


def test_staged_outputs_blame_only_what_they_write(tmp_path):
    """An input that goes missing while outputs are staged is named, not the outputs; a write
    that fails blames the outputs; neither leaves a file behind."""
    from neurostation.errors import UserError
    from neurostation.io.outputs import staged_file

    with pytest.raises(UserError, match=r"^No such file or directory: .*gone\.tif$"):
        with staged_file(tmp_path / "t.tsv", ".tsv") as temp:
            open(temp, "w").close()
            open(tmp_path / "gone.tif", "rb")
    assert not list(tmp_path.iterdir())
    with pytest.raises(UserError, match="^cannot write the outputs: .*No such file"):
        with staged_file(tmp_path / "missing" / "t.tsv") as temp:
            open(temp, "w")
