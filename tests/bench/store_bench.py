"""Our event store under the benchmark workloads, on whichever backend ``open_fresh`` gives.

``store_appends`` is the store as a contender beside the single-event baselines: writers append
each event of an execution in its own call with the exact expected version, sharing one store object
across threads. ``store_batch_appends`` is the store beside the batch baseline: one writer appends
each 100-event execution in one call. The catch-up run seeds a fresh store with batch appends, then
reads the whole feed with ``read_all``; it has nothing to be compared with, so ``run_catch_up``
times it once, in a fresh store of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from events.store import NO_STREAM, EventStore
from tests.bench.timing import (
    Budget,
    Contender,
    Rate,
    one_event_per_call,
    one_execution_per_call,
)
from tests.bench.workload import (
    EXECUTION_EVENTS,
    LONG_EXECUTION_EVENTS,
    Execution,
    LongExecutions,
    build_executions,
)

READ_LIMIT = 5000
WRITER_COUNTS = (1, 4)


@dataclass(frozen=True, slots=True)
class CatchUp:
    rate: Rate
    seeded: int
    seed_seconds: float
    calls: int

    @property
    def complete(self) -> bool:
        return self.rate.events == self.seeded


@contextmanager
def store_appends(
    open_fresh: Callable[[str], EventStore], name: str
) -> Iterator[Contender[Execution]]:
    """A fresh store, one event per ``append``; every writer thread uses the same store object."""
    store = open_fresh(name)
    try:

        def append_one(_: int, execution: Execution, version: int) -> None:
            store.append(execution.stream, [execution.events[version]], version - 1)

        yield Contender(
            "store: append 1 event/call, exact expected ver.",
            build_executions,
            EXECUTION_EVENTS,
            one_event_per_call(append_one),
        )
    finally:
        store.close()


@contextmanager
def store_batch_appends(
    open_fresh: Callable[[str], EventStore], name: str
) -> Iterator[Contender[Execution]]:
    """A fresh store; one writer appends each 100-event execution in one call (transaction)."""
    store = open_fresh(name)
    try:

        def append_all(execution: Execution) -> None:
            store.append(execution.stream, execution.events, NO_STREAM)

        yield Contender(
            "store: batch append, 100 events/call",
            LongExecutions().build_many,
            LONG_EXECUTION_EVENTS,
            one_execution_per_call(append_all),
        )
    finally:
        store.close()


def seed(store: EventStore, events: int) -> int:
    """Append ``events`` events (whole executions, 100 per append); the last position written."""
    builder = LongExecutions()
    remaining = events
    last_position = 0
    while remaining > 0:
        chunk = builder.build_many(min(50, -(-remaining // LONG_EXECUTION_EVENTS)))
        for execution in chunk:
            last_position = store.append(
                execution.stream, execution.events, NO_STREAM
            ).last_position
            remaining -= len(execution.events)
    return last_position


def catch_up(store: EventStore, budget: Budget) -> CatchUp:
    """Seed ``budget.read_events`` events, then time reading the whole feed from position 0."""
    seeded = -(-budget.read_events // LONG_EXECUTION_EVENTS) * LONG_EXECUTION_EVENTS
    started = time.perf_counter()
    last_position = seed(store, seeded)
    seed_seconds = time.perf_counter() - started
    # On PostgreSQL the feed stops below the oldest transaction running anywhere on the server, so
    # another session's open transaction can hide the tail for a moment: wait for it, untimed.
    store.wait_for(last_position - 1, timeout=30)
    position = read = calls = 0
    started = time.perf_counter()
    while True:
        batch = store.read_all(position, limit=READ_LIMIT)
        calls += 1
        if not batch:
            break
        if batch[0].position <= position:
            raise AssertionError(f"read_all went backwards after position {position}")
        read += len(batch)
        position = batch[-1].position
    rate = Rate(read, time.perf_counter() - started)
    return CatchUp(rate, seeded, seed_seconds, calls)


def run_catch_up(
    open_fresh: Callable[[str], EventStore],
    budget: Budget,
    progress: Callable[[str], None] = lambda step: None,
) -> CatchUp:
    """The catch-up measurement; ``open_fresh(name)`` gives an empty, set-up store."""
    reader = open_fresh("read")
    try:
        progress(f"store, seeding {budget.read_events:,} events and reading them back")
        return catch_up(reader, budget)
    finally:
        reader.close()
