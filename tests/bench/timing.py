"""Time-boxed throughput: N writer threads run for a fixed window over work built beforehand.

Fsync latency on a small VM drifts over seconds, so contenders timed one after another are compared
under different conditions. ``interleave`` therefore times them in rounds: every contender is warmed
up, then each round runs every contender once for ``Budget.round_seconds``, in an order that rotates
from round to round, and a contender's figure is the sum over its rounds. The work a writer needs
for a round is built just before that round's timer starts, sized from the best rate seen so far
with a margin, and bounded by ``Budget.max_events``.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tests.bench.workload import Execution

T = TypeVar("T")
# write(writer_index, work, deadline) -> events written by the deadline; stops at the deadline (an
# event that finishes after it is not counted) or when out of work.
Write = Callable[[int, Sequence[T], float], int]

MARGIN = 2.0  # pre-built work per writer, as a multiple of what the best rate so far would use
PROBE_EVENTS = 250  # per writer, for a first rate before the warm-up proper


@dataclass(frozen=True, slots=True)
class Budget:
    rounds: int  # interleaved rounds of each comparison (single-event, batch)
    round_seconds: float  # each contender's timed run in one round
    warmup_seconds: float
    max_events: int  # most events built up front for one timed run or round
    read_events: int  # events seeded for the read_all catch-up


FULL = Budget(
    rounds=8,
    round_seconds=0.5,
    warmup_seconds=0.5,
    max_events=160_000,
    read_events=200_000,
)
QUICK = Budget(
    rounds=3,
    round_seconds=0.3,  # a batch round under load can take longer than 0.15 s
    warmup_seconds=0.2,
    max_events=20_000,
    read_events=10_000,
)


@dataclass(frozen=True, slots=True)
class Rate:
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Contender(Generic[T]):
    """One way of writing the workload: how to build a writer's work, and how to write it."""

    label: str
    build: Callable[[int], Sequence[T]]  # build(units) -> that many units of work
    events_per_unit: int
    write: Write[T]


@dataclass(frozen=True, slots=True)
class Rounds:
    """A contender's timed runs, one per round, and how many ended early for lack of work."""

    rates: tuple[Rate, ...]
    short: int = 0  # runs in which some writer ran out of pre-built work before the deadline

    @property
    def total(self) -> Rate:
        return Rate(sum(r.events for r in self.rates), sum(r.seconds for r in self.rates))


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float


def round_ratios(top: Rounds, bottom: Rounds) -> Spread | None:
    """Median and range of ``top``/``bottom`` events/s, pairing runs from the same round."""
    ratios = [
        t.per_second / b.per_second
        for t, b in zip(top.rates, bottom.rates, strict=True)
        if b.per_second > 0
    ]
    if not ratios:
        return None
    return Spread(statistics.median(ratios), min(ratios), max(ratios))


@dataclass(frozen=True, slots=True)
class _Run:
    rate: Rate
    per_writer: tuple[Rate, ...]  # each writer's events, over the time it wrote within the window
    short: bool  # some writer ran out of work before the deadline


class _Sizer:
    """Units of work per writer for the next run, from the best rates seen so far."""

    def __init__(self, writers: int, events_per_unit: int, max_events: int) -> None:
        self.writers = writers
        self.events_per_unit = events_per_unit
        self.max_events = max_events
        self.per_writer_rate = 0.0  # events/s, the fastest any one writer has gone

    def observe(self, run: _Run) -> None:
        # Writers rarely share the throughput evenly (SQLite's lock is not fair), so size by the
        # fastest writer rather than by an even share of the total.
        fastest = max(rate.per_second for rate in run.per_writer)
        self.per_writer_rate = max(self.per_writer_rate, fastest)

    def units(self, seconds: float) -> int:
        wanted = self.per_writer_rate * seconds * MARGIN
        per_writer = min(max(wanted, 2 * self.events_per_unit), self.max_events / self.writers)
        return math.ceil(per_writer / self.events_per_unit)


def interleave(writers: int, contenders: Sequence[Contender[Any]], budget: Budget) -> list[Rounds]:
    """Warm every contender up, then time them in ``budget.rounds`` rotating rounds.

    All contenders run on the same ``writers`` threads; the result is in ``contenders`` order.
    """
    count = len(contenders)
    sizers = [_Sizer(writers, c.events_per_unit, budget.max_events) for c in contenders]
    runs: list[list[_Run]] = [[] for _ in contenders]
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="bench-writer") as pool:
        for contender, sizer in zip(contenders, sizers, strict=True):
            _warm_up(pool, writers, contender, sizer, budget.warmup_seconds)
        for round_index in range(budget.rounds):
            for i in [(round_index + k) % count for k in range(count)]:
                contender, sizer = contenders[i], sizers[i]
                units = sizer.units(budget.round_seconds)
                work = [contender.build(units) for _ in range(writers)]
                run = _run(pool, contender.write, work, budget.round_seconds)
                del work  # let the round's events go before the next contender builds its own
                sizer.observe(run)
                runs[i].append(run)
    return [Rounds(tuple(r.rate for r in rs), sum(r.short for r in rs)) for rs in runs]


def _warm_up(
    pool: ThreadPoolExecutor,
    writers: int,
    contender: Contender[Any],
    sizer: _Sizer,
    seconds: float,
) -> None:
    """A short probe for a first rate, then a warm-up run sized from it to last ``seconds``."""
    probe = max(1, PROBE_EVENTS // contender.events_per_unit)
    work = [contender.build(probe) for _ in range(writers)]
    sizer.observe(_run(pool, contender.write, work, seconds))
    del work
    work = [contender.build(sizer.units(seconds)) for _ in range(writers)]
    sizer.observe(_run(pool, contender.write, work, seconds))


def _run(
    pool: ThreadPoolExecutor, write: Write[T], work: list[Sequence[T]], seconds: float
) -> _Run:
    # The barrier makes every writer start together; the pool keeps the same threads across the
    # warm-up and the timed runs, so per-thread state set up while warming up is reused.
    barrier = threading.Barrier(len(work) + 1, timeout=60)
    deadline: list[float] = []

    def job(index: int) -> tuple[Rate, bool]:
        barrier.wait()
        written = write(index, work[index], deadline[0])
        ended = time.perf_counter()
        return Rate(written, min(ended, deadline[0]) - started), ended < deadline[0]

    futures = [pool.submit(job, i) for i in range(len(work))]
    started = time.perf_counter()
    deadline.append(started + seconds)
    barrier.wait()
    results = [f.result() for f in futures]
    per_writer = tuple(rate for rate, _ in results)
    # Only events finished by the deadline count, so the timed span is the window itself; a writer
    # still waiting for a lock when it closes (SQLite's busy handler sleeps up to 100 ms) adds
    # nothing. Only if every writer ran out of work early is the span shorter.
    span = max(rate.seconds for rate in per_writer)
    short = any(ran_out for _, ran_out in results)
    return _Run(Rate(sum(rate.events for rate in per_writer), span), per_writer, short)


def one_event_per_call(append_one: Callable[[int, Execution, int], object]) -> Write[Execution]:
    """A writer that appends each execution's events one call (one transaction) at a time."""

    def write(index: int, executions: Sequence[Execution], deadline: float) -> int:
        written = 0
        clock = time.perf_counter
        for execution in executions:
            for version in range(len(execution.events)):
                append_one(index, execution, version)
                if clock() >= deadline:
                    return written
                written += 1
        return written

    return write


def one_execution_per_call(append_all: Callable[[Execution], object]) -> Write[Execution]:
    """A writer that appends each execution's events in one call (one transaction)."""

    def write(_: int, executions: Sequence[Execution], deadline: float) -> int:
        written = 0
        clock = time.perf_counter
        for execution in executions:
            append_all(execution)
            if clock() >= deadline:
                break
            written += len(execution.events)
        return written

    return write
