"""A real ``magictoolbox run`` for the containment tests: started, killed and restarted as a
user (or a crash) would, with the test tools loaded (``TOOL_MODULES``) and users with tokens."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.web.support import ROOT, cli_command, cli_env, free_port, run_cli, wait_healthy

TEST_TOOLS = "tests.handlers.tools"


class Server:
    """One ``magictoolbox run`` process; its output goes to a log file."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                cli_command("run", "--port", str(self.port)),
                cwd=ROOT,
                env=cli_env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(self.url, self.process, log=log, timeout=60)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease dropped, as a crash or the OOM killer would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss(self) -> int:
        """The server process's own resident bytes (its tool workers are other processes)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


def server_env(root: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "BLOB_STORAGE": str(root / "blobs"),
        "DEMO_ACCOUNT": "0",
        "TOOL_MODULES": TEST_TOOLS,
        "PYTHONPATH": str(ROOT),  # the test tools' module, in the server and its workers
        "API_THROTTLE_USER": "100000/min",
        "API_THROTTLE_SUBMIT": "100000/min",
        **extra,
    }


def create_users(env: dict[str, str], *names: str) -> dict[str, str]:
    """Users with API tokens, by name."""
    script = (
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        f"names = {list(names)!r};"
        "[print(n, Token.objects.create(user=get_user_model().objects.create_user("
        "n, password=n + '-pw')).key) for n in names]"
    )
    made = run_cli("shell", "-c", script, **env)
    assert made.returncode == 0, made.stderr
    pairs = [line.split() for line in made.stdout.strip().splitlines()[-len(names) :]]
    return {name: key for name, key in pairs}


def client(url: str, token: str, timeout: float = 60) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=timeout)


def png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    image.putpixel((0, 0), (255, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def submit_file(api: httpx.Client, tool: str, name: str, data: bytes, **params: Any) -> dict:
    answer = api.post(
        "/api/v1/executions/",
        data={"tool": tool, "params": _json(params)},
        files={"file": (name, data)},
    )
    assert answer.status_code in (201, 202), answer.text
    return answer.json()


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def wait_finished(
    api: httpx.Client, ids: list[str], timeout: float, *, tolerate_down: bool = False
) -> dict[str, dict]:
    """Poll until every execution is finished; their last representations."""
    deadline = time.monotonic() + timeout
    last: dict[str, dict] = {}
    pending = list(ids)
    while pending:
        still = []
        for execution_id in pending:
            try:
                answer = api.get(f"/api/v1/executions/{execution_id}/")
            except httpx.TransportError:
                if not tolerate_down:
                    raise
                still.append(execution_id)
                continue
            body = answer.json()
            last[execution_id] = body
            if not body.get("finished"):
                still.append(execution_id)
        pending = still
        if pending and time.monotonic() > deadline:
            states = {i: last.get(i, {}).get("status") for i in pending}
            raise AssertionError(f"{len(pending)} not finished after {timeout}s: {states}")
        if pending:
            time.sleep(0.2)
    return last


def tool_worker_pids(server_pid: int) -> list[int]:
    """The server's tool workers: children of its forkserver, itself a child of the server."""

    def children(pid: int) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
        return found

    return [w for c in children(server_pid) for w in children(c)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
