"""Time-boxed throughput: N writer threads run for a fixed time over work built beforehand.

Every measurement first warms up (connections opened, statements prepared, caches filled) on a
little work; the warm-up rate sizes the timed run's pre-built work so that writers run out of time,
not of work, while memory stays bounded by ``Budget.max_events``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from tests.bench.workload import Execution

T = TypeVar("T")
# write(writer_index, work, deadline) -> events written; stops at the deadline or when out of work.
Write = Callable[[int, Sequence[T], float], int]


@dataclass(frozen=True, slots=True)
class Budget:
    seconds: float  # length of each timed run
    warmup_seconds: float
    max_events: int  # most events built up front for one timed run
    read_events: int  # events seeded for the read_all catch-up


FULL = Budget(seconds=4.0, warmup_seconds=0.5, max_events=160_000, read_events=200_000)
QUICK = Budget(seconds=0.5, warmup_seconds=0.2, max_events=20_000, read_events=10_000)


@dataclass(frozen=True, slots=True)
class Rate:
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def measure(
    writers: int,
    build: Callable[[int], Sequence[T]],
    events_per_unit: int,
    write: Write[T],
    budget: Budget,
) -> Rate:
    """Warm up, size the work from the warm-up rate, then time ``writers`` threads."""
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="bench-writer") as pool:
        warm_units = max(1, 1000 // events_per_unit)
        warm = _run(pool, write, [build(warm_units) for _ in range(writers)], budget.warmup_seconds)
        wanted = warm.per_second * budget.seconds * 1.5 / writers
        per_writer = min(max(wanted, 2 * events_per_unit), budget.max_events / writers)
        units = math.ceil(per_writer / events_per_unit)
        return _run(pool, write, [build(units) for _ in range(writers)], budget.seconds)


def _run(
    pool: ThreadPoolExecutor, write: Write[T], work: list[Sequence[T]], seconds: float
) -> Rate:
    # The barrier makes every writer start together; the pool keeps the same threads across the
    # warm-up and the timed run, so per-thread connections opened while warming up are reused.
    barrier = threading.Barrier(len(work) + 1, timeout=60)
    deadline: list[float] = []

    def job(index: int) -> int:
        barrier.wait()
        return write(index, work[index], deadline[0])

    futures = [pool.submit(job, i) for i in range(len(work))]
    started = time.perf_counter()
    deadline.append(started + seconds)
    barrier.wait()
    events = sum(f.result() for f in futures)
    return Rate(events, time.perf_counter() - started)


def one_event_per_call(append_one: Callable[[int, Execution, int], object]) -> Write[Execution]:
    """A writer that appends each execution's events one call (one transaction) at a time."""

    def write(index: int, executions: Sequence[Execution], deadline: float) -> int:
        written = 0
        clock = time.perf_counter
        for execution in executions:
            for version in range(len(execution.events)):
                append_one(index, execution, version)
                written += 1
                if clock() >= deadline:
                    return written
        return written

    return write
