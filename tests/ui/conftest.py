"""Browser tests run against a live local Galaxy (scripts/test starts it) in Debian's Chromium.

They are run by the tooling venv (playwright), not the package venv: `scripts/test` calls
them with GALAXY_URL set. Without it they fail loudly rather than skip.
"""

import os
import uuid

import pytest

CHROMIUM = os.environ.get("NS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "artifacts", "screenshots")
# Flags proven on these machines (DESIGN.md §6); swiftshader gives a software WebGL2.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="session")
def galaxy_url():
    url = os.environ.get("GALAXY_URL")
    if not url:
        pytest.fail("GALAXY_URL is not set: run these tests through scripts/test (or "
                    "eval \"$(scripts/galaxy env)\" first)")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def user(galaxy_url):
    """A fresh user with a known password (to log in through the form) and an API key; deleted
    and purged at the end (the harness's galaxy.yml has allow_user_deletion: true)."""
    from bioblend.galaxy import GalaxyInstance

    admin_key = os.environ.get("GALAXY_ADMIN_KEY")
    if not admin_key:
        pytest.fail("GALAXY_ADMIN_KEY is not set: eval \"$(scripts/galaxy env)\" first")
    admin = GalaxyInstance(galaxy_url, key=admin_key)
    name = f"viewer-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    created = admin.users.create_local_user(name, f"{name}@neurostation.local", password)
    gi = GalaxyInstance(galaxy_url, key=admin.users.create_user_apikey(created["id"]))
    yield {"email": f"{name}@neurostation.local", "password": password, "gi": gi}
    admin.users.delete_user(created["id"])
    admin.users.delete_user(created["id"], purge=True)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=FLAGS, viewport={"width": 1400, "height": 900})
        yield context
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    page.close()


@pytest.fixture
def screenshot():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return lambda page, name: page.screenshot(path=os.path.join(ARTIFACTS, name), full_page=False)
