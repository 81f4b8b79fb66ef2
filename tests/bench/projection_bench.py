"""Projections on PostgreSQL: how fast ``rebuild`` replays the feed, and how far behind the status
read model runs while a burst of executions is submitted.

Rebuild: the feed is seeded with executions as users make them (most of 4 events, some with 96
progress reports), untimed; then each projection is rebuilt from position 0 into fresh tables and
swapped in, timed. Lag: a projector runs in a thread while writer threads submit executions as fast
as they can, in their own processes (as API workers or Functions would be); for each execution the
lag is the time from its append returning to the commit of the status projection's transaction that
made it visible.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from multiprocessing import Queue, get_context
from uuid import uuid4

from events.catalog import Submitted
from events.database import Database
from events.envelope import RecordedEvent, execution_stream, execution_subject, new_event
from events.opening import open_store
from events.store import NO_STREAM, EventStore
from projections.projector import Projector
from projections.rebuild import rebuild
from projections.registry import ALL
from tests.bench.places import PostgresSchemas
from tests.bench.workload import LongExecutions, build_executions

REBUILD_TARGET = 20_000  # events/s
LAG_TARGET_NOTE = "p95 (ms) from append to visible in the status read model"


def seed(store: EventStore, short: int, long: int) -> int:
    """Append ``short`` 4-event and ``long`` 100-event executions; the number of events."""
    events = 0
    for execution in build_executions(short):
        store.append(execution.stream, execution.events, NO_STREAM)
        events += len(execution.events)
    builder = LongExecutions()
    for _ in range(long):
        execution = builder.build()
        store.append(execution.stream, execution.events, NO_STREAM)
        events += len(execution.events)
    return events


class StampingProjector(Projector):
    """A projector that notes when each execution's Submitted became visible in status rows."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, on_applied=self._stamp, **kwargs)  # type: ignore[arg-type]
        self.visible: dict[str, float] = {}

    def _stamp(self, name: str, events: Sequence[RecordedEvent], db: Database) -> None:
        if name == "status":  # called once the batch's transaction committed: rows are visible
            now = time.monotonic()
            for event in events:
                self.visible.setdefault(event.stream, now)


def _submit_burst(store_url: str, count: int, results: Queue) -> None:
    """A writer process: submit ``count`` executions; report (stream, monotonic time) pairs."""
    store = open_store(store_url)
    appended = []
    for _ in range(count):
        eid = uuid4()
        event = new_event(
            Submitted(
                execution_id=eid,
                tool="image-rotate",
                category="image",
                tool_version="1",
                mode="async",
                owner="7",
            ),
            subject=execution_subject("image", "image-rotate", eid),
        )
        store.append(execution_stream(eid), [event], NO_STREAM)
        appended.append((execution_stream(eid), time.monotonic()))
    store.close()  # flushes the last NOTIFY
    results.put(appended)


def measure_lag(
    store: EventStore, store_url: str, db_url: str, executions: int, writers: int = 4
) -> list[float]:
    """Writers in their own processes (as API workers or Functions would be), the projector here.

    time.monotonic is one clock for every process on the machine, so the lag is comparable.
    """
    projector = StampingProjector(store, db_url)
    projector.setup()
    thread, stop = projector.start()
    context = get_context("fork")
    results: Queue = context.Queue()
    processes = [
        context.Process(target=_submit_burst, args=(store_url, executions // writers, results))
        for _ in range(writers)
    ]
    for p in processes:
        p.start()
    appended = dict(pair for _ in processes for pair in results.get(timeout=300))
    for p in processes:
        p.join()
    deadline = time.monotonic() + 60
    while len(projector.visible) < len(appended) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    projector.close()
    missing = set(appended) - set(projector.visible)
    if missing:
        raise AssertionError(f"{len(missing)} executions never became visible")
    return [(projector.visible[s] - t) * 1000 for s, t in appended.items()]


def run_projections(url: str, quick: bool, progress: Callable[[str], None]) -> str:
    short, long, burst = (2_000, 20, 1_000) if quick else (25_000, 1_000, 10_000)
    lines = ["Projections on PostgreSQL"]
    with PostgresSchemas(url) as schemas:
        store = schemas.open_store("proj")
        db_url = f"{url}{'&' if '?' in url else '?'}schema={schemas.prefix}_proj"
        progress(f"projections: seeding {short * 4 + long * 100:,} events")
        total = seed(store, short, long)
        lines.append(
            f"  rebuild from position 0 over {total:,} events ({short:,} executions of 4 events,"
            f" {long:,} of 100), target ≥ {REBUILD_TARGET:,} feed events/s"
        )
        for name in ALL:
            progress(f"projections: rebuilding {name}")
            started = time.perf_counter()
            result = rebuild(store, db_url, name)
            seconds = time.perf_counter() - started
            rate = total / seconds
            verdict = "met" if rate >= REBUILD_TARGET else "SHORT"
            lines.append(
                f"    {name:<12} {seconds:6.2f} s  {rate:9,.0f} feed events/s  ({result.events:,}"
                f" events applied)  {verdict}"
            )
        progress(f"projections: lag during a burst of {burst:,} executions")
        lag_store = schemas.open_store("lag")
        lag_url = f"{url}{'&' if '?' in url else '?'}schema={schemas.prefix}_lag"
        started = time.perf_counter()
        lags = sorted(measure_lag(lag_store, lag_url, lag_url, burst))
        seconds = time.perf_counter() - started
        p95 = lags[int(len(lags) * 0.95) - 1]
        lines.append(
            f"  status lag, burst of {len(lags):,} executions from 4 writer processes "
            f"({len(lags) / seconds:,.0f} executions/s incl. drain): p50 "
            f"{statistics.median(lags):.1f} ms, p95 {p95:.1f} ms, max {lags[-1]:.1f} ms"
        )
        lines.append(f"  ({LAG_TARGET_NOTE}; every execution became visible)")
        store.close()
        lag_store.close()
    return "\n".join(lines)
