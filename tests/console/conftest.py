"""Browser tests of the console: Playwright driving Debian's chromium against a real `odin serve` following a real
repository. A missing browser fails (CI installs it, see .ci/run): it never skips."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.git import GitRemote
from tests.support.server import OdinServer, odinctl
from tests.support.wait import wait_until

CHROMIUM = os.environ.get("ODIN_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct-horse-battery"
VIEWER_PASSWORD = "viewer-horse-battery"
# Assertions wait for the page up to this long: a loaded two-core CI machine renders the API docs' 200 kB document
# in seconds, not the default 5 s. A passing assertion returns as soon as it holds.
expect.set_options(timeout=30_000)

HELLO = "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"
TUNE = """\
name: tune
params:
  mode: {default: fast, choices: [fast, slow]}
  epochs: {type: integer, default: 2}
tasks:
  - name: fit
    image: busybox
    command: [sh, -c, 'echo fitting ${params.mode} for ${params.epochs}']
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One browser per test module, closed when the module ends: Playwright's sync API keeps an asyncio event loop
    running on the main thread while it is open, and every later test calling `asyncio.run()` would fail with
    "cannot be called from a running event loop" (a session-scoped browser broke every test after tests/console)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a test's screenshots go (the test's own output directory)."""
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


@pytest.fixture
def console_server(db_url: str, git_remote: GitRemote, tmp_path: Path) -> Iterator[OdinServer]:
    git_remote.commit({"hello/main.yml": HELLO, "tune/main.yml": TUNE}, "add hello")
    env = {
        "ODIN_REPO": git_remote.file_url,
        "ODIN_DATABASE_URL": db_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_RETRY_BACKOFF": "0.1",
    }
    with OdinServer(tmp_path / "state", env) as server:
        wait_until(lambda: "first sync" in server.log(), 30, message="the server's first sync")
        config = tmp_path / "admin-config"
        res = odinctl("login", "--password-stdin", server=server, config_dir=config, stdin=PASSWORD + "\n")
        assert res.returncode == 0, res.stderr
        res = odinctl(
            "users", "create", "vera", "--role", "viewer", "--password-stdin",
            server=server, config_dir=config, stdin=VIEWER_PASSWORD + "\n",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(30_000)
    p = context.new_page()
    yield p
    context.close()


def log_in(page: Page, server: OdinServer, user: str = "admin", password: str = PASSWORD) -> None:
    page.goto(server.url + "/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/commits")


def keep(shot: Path, name: str) -> None:
    """Copy a screenshot into the repository's docs (the README shows the run page) when asked to with
    `ODIN_UPDATE_SCREENSHOTS=1`: a test run must not rewrite tracked files (each run's picture differs by a pixel)."""
    if os.environ.get("ODIN_UPDATE_SCREENSHOTS") != "1":
        return
    docs = Path(__file__).resolve().parents[2] / "docs" / "images"
    docs.mkdir(exist_ok=True)
    shutil.copyfile(shot, docs / name)
