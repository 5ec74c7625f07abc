"""Shared fixtures: paths to test data and a runner for the real CLI in a subprocess."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DATA = os.path.join(ROOT, "test-data")


@pytest.fixture
def data():
    """Path of a file in test-data/."""
    return lambda name: os.path.join(TEST_DATA, name)


@pytest.fixture
def cli():
    """Run `neurostation ARGS...` as a user would, returning the CompletedProcess."""

    def run(*args, **kwargs):
        return subprocess.run([sys.executable, "-m", "neurostation.cli", *map(str, args)],
                              capture_output=True, text=True, **kwargs)

    return run


# The browser and Galaxy API tests need playwright and bioblend, which live in the tooling venv
# (scripts/test runs them there against a live Galaxy); the package venv skips collecting them.
try:
    import bioblend  # noqa: F401
    import playwright  # noqa: F401
except ImportError:
    collect_ignore = ["ui", "galaxy"]
