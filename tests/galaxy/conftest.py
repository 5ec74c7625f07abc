"""The bioblend tests run against the live local Galaxy (scripts/test starts it), in the tooling
venv, as the harness's user (GALAXY_URL, GALAXY_USER_KEY). Without them they fail loudly."""

import os

import pytest
from bioblend.galaxy import GalaxyInstance


@pytest.fixture(scope="session")
def user_galaxy():
    """A bioblend GalaxyInstance of the harness's user."""
    url, key = os.environ.get("GALAXY_URL"), os.environ.get("GALAXY_USER_KEY")
    if not (url and key):
        pytest.fail("GALAXY_URL and GALAXY_USER_KEY are not set: run through scripts/test (or "
                    "eval \"$(scripts/galaxy env)\" first)")
    return GalaxyInstance(url, key=key)
