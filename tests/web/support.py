"""Helpers for the web tests: run the ``magictoolbox`` CLI and its server as a user would;
append executions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from events.catalog import Completed, Processing, Submitted
from events.envelope import execution_stream, execution_subject, new_event
from events.store import EventStore
from web.core.azurite import free_port as free_port  # for the tests that start servers

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "/magictoolbox/test"


def embedded_env(root: Path, **extra: str) -> dict[str, str]:
    """The settings of an embedded deployment in ``root`` (no demo account unless asked)."""
    return {
        "DATABASE_URL": f"sqlite:///{root / 'app.sqlite3'}",
        "BLOB_STORAGE": str(root / "blobs"),
        "DEMO_ACCOUNT": "0",
        **extra,
    }


def wait_healthy(
    url: str, process: subprocess.Popen[Any], *, log: Path | None = None, timeout: float = 60
) -> None:
    """Until ``url``/healthz answers 200; RuntimeError (with the log's tail) if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"the server at {url} did not come up\n{tail}")
        time.sleep(0.1)


def cli_command(*args: str) -> list[str]:
    """The installed console script when the venv has it, else ``python -m web.manage``."""
    script = Path(sys.executable).with_name("magictoolbox")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "web.manage", *args]


def cli_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "EVENTSTORE_URL"}}
    env["DJANGO_SETTINGS_MODULE"] = "web.settings"
    env.update(overrides)
    return env


def run_cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args),
        cwd=ROOT,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def submit(
    store: EventStore,
    *,
    tool: str = "base64-encode",
    finish: bool = True,
    params: dict[str, Any] | None = None,
) -> UUID:
    """Append one execution's lifecycle (Submitted, Processing, Completed) and return its id."""
    execution_id = uuid4()
    subject = execution_subject("encoders", tool, execution_id)
    payloads = [
        Submitted(
            execution_id=execution_id,
            tool=tool,
            category="encoders",
            tool_version="1",
            mode="sync",
            owner="1",
            params=params or {},
        ),
        Processing(attempt=1, worker_id="worker-1", deadline=datetime(2030, 1, 1, tzinfo=UTC)),
    ]
    if finish:
        payloads.append(Completed(result="aGVsbG8=", duration_ms=3))
    events = [new_event(p, subject=subject, source=SOURCE) for p in payloads]
    store.append(execution_stream(execution_id), events)
    return execution_id
