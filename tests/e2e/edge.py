"""What every edge attack test measures: does another user notice?

``Bystander`` is a signed-in user who keeps reading one of their executions
(``GET /api/v1/executions/{id}/``, the API's hottest read) through the real server. It measures
an idle p95 first, then the p95 while an attack runs, and ``check()`` asserts that the second is
within ``RATIO`` (twice) of the first and that every answer was a 200. One helper for all the attack
tests of the edge, so each says the same thing the same way.

    with bystander.watching():
        ...the attack...
    bystander.check()

An attack over in a blink is repeated for a few seconds (``repeat``) so the reads under attack
are enough to measure.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.e2e.contained import client

RATIO = 2.0
NOTICED = "NOTICED"  # the ratio's failure, which pytest runs again (pyproject's --only-rerun)
READER = Path(__file__).with_name("bystander_reader.py")
T = TypeVar("T")


def p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=20)[18]


PACE = 0.05  # between one attacker's requests: a script's pace; a flood is the rate limits'


def paced(answer: T) -> T:
    """``answer``, after the attacker's pause: ``paced(api.post(...))``."""
    time.sleep(PACE)
    return answer


def repeat(attack: Callable[[], T], seconds: float = 3.0, pause: float = PACE) -> list[T]:
    """``attack()`` again and again, ``pause`` apart, for at least ``seconds``; every result.
    (One attacker's attack, repeated; a flood of them is what the rate limits are for.)"""
    results = []
    ends = time.monotonic() + seconds
    while not results or time.monotonic() < ends:
        results.append(attack())
        time.sleep(pause)
    return results


def _busy_and_total() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def quiet(busiest: float = 0.25, timeout: float = 15.0) -> None:
    """Wait (up to ``timeout``) until the machine's CPUs are at most ``busiest`` busy over two
    consecutive tenths of a second."""
    deadline = time.monotonic() + timeout
    calm = 0
    busy, total = _busy_and_total()
    while calm < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        now_busy, now_total = _busy_and_total()
        share = (now_busy - busy) / max(now_total - total, 1)
        calm = calm + 1 if share <= busiest else 0
        busy, total = now_busy, now_total


class Bystander:
    """Another user reading their own execution, paced, through the real server.

    The reads come from a process of their own (``bystander_reader.py``): another user does not
    share the attacker's interpreter, and a thread here would time the test's own lock waits.
    The server needs a user rate limit far above ``1 / pause`` per second (``server_env`` sets
    100000/min); the bystander must never be throttled by its own reading.
    """

    def __init__(self, url: str, token: str, *, pause: float = 0.01) -> None:
        self.url = url
        self.token = token
        self.pause = pause
        with client(url, token, timeout=30) as api:
            made = api.post(
                "/api/v1/executions/", json={"tool": "hash-text", "params": {"text": "mine"}}
            )
            assert made.status_code in (201, 202), made.text
            self.path = f"/api/v1/executions/{made.json()['id']}/"
        self.idle: list[float] = []
        self.busy: list[float] = []
        self.failures: list[str] = []
        self._reads: list[tuple[float, float, str]] = []
        self._window = (0.0, 0.0)
        self._reader: subprocess.Popen[str] | None = None
        self._collector: threading.Thread | None = None

    def _start(self) -> None:
        self._reader = subprocess.Popen(
            [sys.executable, str(READER), self.url, self.token, self.path, str(self.pause)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        reader = self._reader

        def collect() -> None:
            assert reader.stdout is not None
            for line in reader.stdout:
                started, took, outcome = line.split(" ", 2)
                self._reads.append((float(started), float(took), outcome.strip()))

        self._collector = threading.Thread(target=collect, name="bystander", daemon=True)
        self._collector.start()

    def _stop(self) -> None:
        if self._reader is None:
            return
        assert self._reader.stdin is not None
        self._reader.stdin.close()
        try:
            self._reader.wait(35)
        except subprocess.TimeoutExpired:
            self._reader.kill()
            self._reader.wait()
        if self._collector is not None:
            self._collector.join(10)
        self._reader = None

    def _between(self, since: float, until: float, into: list[float]) -> None:
        for started, took, outcome in list(self._reads):
            if since <= started <= until:
                if outcome == "200":
                    into.append(took)
                else:
                    self.failures.append(outcome[:200])

    def measure_idle(self, count: int = 200) -> float:
        """The idle p95 (seconds), from ``count`` paced reads once the machine is quiet (a
        server just started still imports and warms for a second or two)."""
        quiet()
        if self._reader is None:
            self._start()
        since = time.monotonic()
        deadline = since + 120
        while sum(1 for read in list(self._reads) if read[0] >= since) < count:
            assert time.monotonic() < deadline, "the bystander's reads did not come"
            assert self._reader is not None and self._reader.poll() is None, "reader died"
            time.sleep(0.05)
        self._between(since, self._reads[-1][0], self.idle)
        return p95(self.idle)

    @contextlib.contextmanager
    def watching(self) -> Iterator[Bystander]:
        """Read continuously while the ``with`` body (the attack) runs."""
        if not self.idle:
            self.measure_idle()
        # The attacker's client runs in this process: its garbage collections are not the
        # server's doing, and take a core the server and the bystander share.
        gc.collect()
        gc.disable()
        since = time.monotonic()
        try:
            yield self
        finally:
            gc.enable()
            until = time.monotonic()
            self._window = (since, until)
            self._stop()
            self._between(since, until, self.busy)

    def report(self) -> str:
        since, until = self._window
        slowest = sorted(
            (took, started - since) for started, took, _ in self._reads if since <= started <= until
        )[-5:]
        where = ", ".join(f"{took * 1000:.0f} ms at +{at:.2f} s" for took, at in reversed(slowest))
        return (
            f"bystander GET {self.path} p95 idle {p95(self.idle) * 1000:.1f} ms, under attack "
            f"{p95(self.busy) * 1000:.1f} ms ({len(self.busy)} reads in {until - since:.1f} s, "
            f"{len(self.failures)} failed; slowest: {where})"
        )

    def check(self, minimum_reads: int = 30, *, known: str | None = None) -> None:
        """Every read answered 200, and the p95 under attack is within twice the idle p95.

        ``known``: the ratio is known to go over at times (why, in the caller's comment), so
        over it the test is an expected failure saying ``known``, not a failure; a failed or
        missing read still fails it."""
        print(self.report())
        assert not self.failures, self.failures[:5]
        assert len(self.busy) >= minimum_reads, f"only {len(self.busy)} reads during the attack"
        idle, busy = p95(self.idle), p95(self.busy)
        if busy > RATIO * idle and known is not None:
            pytest.xfail(f"{known}: {NOTICED}: {self.report()}")
        assert busy <= RATIO * idle, f"{NOTICED}: {self.report()}"
