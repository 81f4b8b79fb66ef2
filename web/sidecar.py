"""A command that runs beside the web in a process of its own, for as long as the web runs.

Background work in the web's own interpreter shares its GIL with every request: the outbox
relay's publishing (azure-eventgrid's pipeline, each event sized as the SDK escapes it) held it
in stretches that another user's quick reads waited behind, x2-4 at p95 on a 2-core machine.
In a process of its own, at a lower CPU priority, the same work costs them what the CPU share
costs, no more.

A ``Sidecar`` starts with the web, is restarted (with backoff) when it exits unasked, stops
with the web (SIGTERM, then SIGKILL), and dies with the web: the kernel kills it if the web
process dies without a word (``PR_SET_PDEATHSIG``), so no orphan relays on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STEADY = 60.0  # a child that ran this long before exiting restarts at the first backoff


def management_command(*args: str) -> list[str]:
    """``magictoolbox <args>`` with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "web.manage", *args]


def dying_with_this_process(argv: list[str], nice: int = 0) -> list[str]:
    """``argv`` as a command line that runs at ``nice`` and dies with this process (or rather
    with the thread that starts it, as ``PR_SET_PDEATHSIG`` goes): ``python -m web.sidecar
    PARENT NICE ARGV...`` calls ``become_sidecar``, then execs ARGV."""
    program = argv[0] if os.sep in argv[0] else (shutil.which(argv[0]) or argv[0])
    return [sys.executable, "-m", "web.sidecar", str(os.getpid()), str(nice), program, *argv[1:]]


def become_sidecar(parent: int, nice: int) -> None:
    """In the sidecar's own process, before it becomes ``argv``: lower its priority and die
    with the web. (Done here, not in a ``preexec_fn``: forking a threaded web and running
    Python before ``exec`` can deadlock.) Both hold across the ``exec`` that follows."""
    if nice:
        os.nice(nice)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: stopped by ``stop`` only
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the web died before the line above
        os._exit(1)


class Sidecar:
    """``argv`` run beside this process, supervised by a thread of its own.

    ``start()`` returns ``(thread, stop)`` like the other background parts; setting ``stop``
    ends the child and the thread. ``pid`` is the running child's (None between two).
    """

    def __init__(self, name: str, argv: list[str], *, nice: int = 0) -> None:
        self.name = name
        self.argv = argv
        self.nice = nice
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self._supervise, args=(stop,), name=self.name)
        thread.daemon = True
        thread.start()
        return thread, stop

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        # Its stdout and stderr are the web's: the child's log lines land in the web's log.
        return subprocess.Popen(
            dying_with_this_process(self.argv, self.nice), stdin=subprocess.DEVNULL
        )

    def _supervise(self, stop: threading.Event) -> None:
        backoff = FIRST_BACKOFF
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._process = process = self._spawn()
            except OSError:
                log.exception("%s: could not start %s", self.name, self.argv)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            log.info("%s: running as process %d (nice %d)", self.name, process.pid, self.nice)
            while not stop.is_set() and process.poll() is None:
                stop.wait(0.5)
            if stop.is_set():
                self._end(process)
                return
            ran = time.monotonic() - started
            if ran >= STEADY:
                backoff = FIRST_BACKOFF
            log.warning(
                "%s: process %d exited with %s after %.1f s; starting it again in %.0f s",
                self.name,
                process.pid,
                process.returncode,
                ran,
                backoff,
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _end(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    become_sidecar(int(sys.argv[1]), int(sys.argv[2]))
    os.execv(sys.argv[3], sys.argv[3:])
