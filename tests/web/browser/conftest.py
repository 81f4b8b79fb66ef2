"""The browser tests' world: the app as ``make run`` serves it (one uvicorn process with the
projector and Functions host inside) on a temp deployment, Debian's Chromium driven by
Playwright, and fresh users who sign up through the form.

Without Chromium or Playwright the tests are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.web.browser.steps import sign_up
from tests.web.support import ROOT, cli_env, embedded_env, free_port, run_cli, wait_healthy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IN_CI = os.environ.get("CI", "").lower() == "true"
# The server and the browser are "package" fixtures: started for the first test here and
# stopped after the last, not left running through the rest of the session.
TIMEOUT_MS = 15_000  # any one wait; a run takes well under a second here


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, where the browser tests must run."""
    if IN_CI:
        pytest.fail(f"browser tests cannot run under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of ``make run``'s process, on a free port, against a temp deployment."""
    root = tmp_path_factory.mktemp("deployment")
    env = embedded_env(root)
    migrated = run_cli("migrate", "--no-input", **env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    uvicorn = Path(sys.executable).with_name("uvicorn")
    command = [str(uvicorn), "web.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    # A file, not a pipe: nobody reads the output while the tests run, and a full pipe blocks.
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=cli_env(**env), stdout=out, stderr=out)
    try:
        wait_healthy(url, process, log=log, timeout=30)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright cannot be imported: {exc}")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def axe() -> Any:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError as exc:
        unavailable(f"axe-playwright-python cannot be imported: {exc}")
    return Axe()


def _new_context(browser: Any, server: str, **options: Any) -> Any:
    context = browser.new_context(base_url=server, accept_downloads=True, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture(scope="module")
def signed_in(browser: Any, server: str) -> dict[str, Any]:
    """The cookies of a user who signed up through the form: one user per test module, as
    signing up costs a second or two of password hashing."""
    context = _new_context(browser, server)
    try:
        sign_up(context.new_page())
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def new_page(browser: Any, server: str) -> Iterator[Callable[..., Any]]:
    """Opens pages, each in a browser context of its own: ``new_page()`` signed out,
    ``new_page(storage_state=…)`` as someone."""
    contexts: list[Any] = []

    def open_page(**options: Any) -> Any:
        contexts.append(_new_context(browser, server, **options))
        return contexts[-1].new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any], signed_in: dict[str, Any]) -> Any:
    """A fresh page (its own context) signed in as the module's user."""
    return new_page(storage_state=signed_in)


@pytest.fixture(scope="package")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000 x 2000 PNG (28 KB) to upload. Turning it keeps the worker busy for some 0.3 s,
    so the run is still going when the API's answer to the upload reaches the page (with a
    tiny image it may not be: see ``test_a_run_finished_before_its_upload_answer_shows_completed``).
    """
    path = tmp_path_factory.mktemp("upload") / "wide.png"
    Image.new("RGB", (4000, 2000), "teal").save(path, "PNG")
    return path
