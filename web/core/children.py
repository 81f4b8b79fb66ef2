"""Child processes of a command that runs others: ``magictoolbox run-azure``, and the end-to-end
tests and benchmarks that start the same commands.

A ``Child`` copies its output, line by line with its name in front, to a stream of ours (the
terminal, or a log file a test can show when something fails). It runs in a session of its
own, so a Ctrl-C at the terminal reaches only us, and we stop the children in our own order.
``wait_for`` waits until a URL the child serves answers (and, optionally, says it is ready).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from web.sidecar import dying_with_this_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ChildFailed(RuntimeError):
    """A child exited, or never answered, while we waited for it."""


class Child:
    def __init__(self, name: str, command: list[str], env: dict[str, str], out: IO[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            # Dies with this process too: one killed before it could stop its children (a
            # caller's timeout, the OOM killer) leaves no web, relay or emulator running alone.
            dying_with_this_process(command),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # our Ctrl-C is ours to pass on, in order
        )
        self._copier = threading.Thread(target=self._copy, args=(out,), daemon=True)
        self._copier.start()

    def _copy(self, out: IO[str]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            out.write(f"{self.name:>9} | {line}")
            out.flush()

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15, *, kill: bool = False) -> None:
        """Ctrl-C (SIGINT) and wait, then SIGKILL; ``kill``: SIGKILL at once (a crash)."""
        if self.running():
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._copier.join(2)


def wait_for(
    url: str,
    child: Child,
    timeout: float = 60,
    ready: Callable[[Any], bool] | None = None,
) -> None:
    """Until ``url`` answers 200 (and ``ready`` accepts its JSON, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200 and (ready is None or ready(orjson.loads(answer.read()))):
                    return
        except OSError:
            pass
        if not child.running():
            raise ChildFailed(f"{child.name} exited with {child.process.returncode}")
        time.sleep(0.1)
    raise ChildFailed(f"{child.name} did not answer at {url} in {timeout:.0f} s")


def emulator_settled(status: dict[str, Any]) -> bool:
    """The Event Grid emulator's ``/emulator/status`` says every handshake has ended."""
    return bool(status.get("settled"))
