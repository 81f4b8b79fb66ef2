"""``make run`` as a newcomer meets it: ``magictoolbox run`` migrates, prints the URL and a demo
account's credentials on the first start, serves the UI and the API, and stops on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.web.support import (
    ROOT,
    cli_command,
    cli_env,
    embedded_env,
    free_port,
    run_cli,
    wait_healthy,
)

pytestmark = pytest.mark.timeout(120)


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            cli_command("run", "--port", str(self.port)),
            cwd=ROOT,
            env=cli_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.banner: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:  # everything up to uvicorn's own start-up lines
            self.banner.append(line)
            if "Ctrl-C" in line:
                break
        try:
            wait_healthy(self.url, self.process, timeout=30)
        except RuntimeError:
            self.process.kill()
            pytest.fail("".join(self.banner) + self.process.communicate()[0])

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C, as a terminal sends it; the exit code and what it printed meanwhile."""
        self.process.send_signal(signal.SIGINT)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return self.process.returncode, out


def sign_in(url: str, username: str, password: str) -> httpx.Client:
    browser = httpx.Client(base_url=url, timeout=10)
    form = browser.get("/accounts/login/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    signed_in = browser.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    return browser


def test_a_first_start_prints_the_url_and_a_demo_account_that_works(tmp_path: Path) -> None:
    env = embedded_env(tmp_path, DEMO_ACCOUNT="1")
    server = Server(env)
    try:
        banner = "".join(server.banner)
        assert f"MagicToolbox is starting on {server.url}/" in banner
        found = re.search(r"user 'demo', password '([^']+)'", banner)
        assert found, banner
        browser = sign_in(server.url, "demo", found.group(1))
        ran = browser.post(
            "/api/v1/executions/",
            json={"tool": "base64-encode", "params": {"text": "hello"}},
            headers={"X-CSRFToken": browser.cookies["csrftoken"]},
        )
        assert ran.status_code == 201 and ran.json()["result"] == "aGVsbG8="
        page = browser.get("/tools/base64-encode/")
        assert page.status_code == 200 and ran.json()["id"] in page.text  # in the history

        created = run_cli("drf_create_token", "demo", **env)  # an API token from the CLI
        key = re.search(r"Generated token (\w+)", created.stdout).group(1)
        mine = httpx.get(
            f"{server.url}/api/v1/executions/", headers={"Authorization": f"Token {key}"}
        )
        assert [e["id"] for e in mine.json()["results"]] == [ran.json()["id"]]
    finally:
        code, out = server.interrupt()
    assert code == 0, out
    assert "Application shutdown complete" in out and "MagicToolbox stopped." in out
    assert "Traceback" not in out

    again = Server(env)  # a second start: the account exists, no new credentials
    try:
        assert "demo account" not in "".join(again.banner)
    finally:
        assert again.interrupt()[0] == 0


def test_no_demo_account_outside_the_embedded_default(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    server = Server(env)
    try:
        assert "demo account" not in "".join(server.banner)
    finally:
        assert server.interrupt()[0] == 0
