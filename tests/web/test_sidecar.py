"""The web's sidecar (the relay's own process): lower priority, restarted when it dies, ended
with the web, and killed by the kernel when the web dies without a word."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from web.sidecar import Sidecar

ROOT = Path(__file__).resolve().parents[2]
# A stand-in for ``magictoolbox relay``: says it started, then sleeps.
CHILD = [sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(120)"]


def eventually(check: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def nice_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def test_a_sidecar_runs_nicer_is_restarted_when_killed_and_ends_with_stop(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("web.sidecar.FIRST_BACKOFF", 0.1)
    sidecar = Sidecar("test-sidecar", CHILD, nice=7)
    thread, stop = sidecar.start()
    try:
        first = eventually(lambda: sidecar.pid)
        assert isinstance(first, int)
        assert eventually(lambda: nice_of(first) == os.nice(0) + 7)

        os.kill(first, signal.SIGKILL)  # a crash, or the OOM killer
        second = eventually(lambda: sidecar.pid not in (None, first) and sidecar.pid)
        assert isinstance(second, int) and second != first
        assert sidecar.starts == 2
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert not alive(second)  # stopped with the web, not left behind


def child_after_parent_killed(parent_script: str, ready: str) -> int:
    """Runs ``parent_script`` (it starts ``CHILD`` and prints the child's pid; the child prints
    ``ready`` on the same stdout), SIGKILLs it once both lines came, and gives the child's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(parent_script), *CHILD],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        lines = {parent.stdout.readline().strip(), parent.stdout.readline().strip()}
        lines.discard(ready)
        child = int(lines.pop())
        assert alive(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    return child


def test_a_sidecar_dies_with_a_web_killed_without_a_word() -> None:
    web = """
        import sys, time
        from web.sidecar import Sidecar
        sidecar = Sidecar("orphan-check", sys.argv[1:])
        sidecar.start()
        while sidecar.pid is None:
            time.sleep(0.01)
        print(sidecar.pid, flush=True)
        time.sleep(120)
        """
    # "ready" is the child's, once become_sidecar() has run
    child = child_after_parent_killed(web, ready="ready")
    assert eventually(lambda: not alive(child), timeout=10), "the sidecar outlived the web"


def test_run_azures_children_die_with_it_when_it_is_killed_without_a_word() -> None:
    # ``magictoolbox run-azure`` starts the web, the Functions host and the emulator as
    # ``Child``ren in sessions of their own (its Ctrl-C is passed on in order). A caller that
    # gave up on its shutdown and SIGKILLed it left all three running (seen after the
    # benchmarks' smoke run); now the kernel ends them with it.
    orchestrator = """
        import os, sys, time
        from web.core.children import Child
        child = Child("sleeper", sys.argv[1:], dict(os.environ), sys.stdout)
        print(child.process.pid, flush=True)
        time.sleep(120)
        """
    child = child_after_parent_killed(orchestrator, ready="sleeper | ready")
    assert eventually(lambda: not alive(child), timeout=10), "run-azure's child outlived it"
