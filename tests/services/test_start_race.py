"""Workers racing to start one execution: exactly one wins, every other gets IllegalTransition.

Real threads on a real store, released together by a barrier: the optimistic append refuses all
but one ``Processing``, and each loser, deciding again on the new state, is told the execution is
already processing (not a crash, not ConcurrencyConflict).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime

from events.postgres_store import PostgresEventStore
from events.sqlite_store import SQLiteEventStore
from events.store import EventStore
from services.executions.commands import Start, Submit
from services.executions.decider import IllegalTransition, Status
from services.executions.service import DEFAULT_TIMEOUT, ExecutionService

EXECUTIONS = 20
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def race(store: EventStore, workers: int) -> None:
    service = ExecutionService(store)
    eids = [uuid.uuid4() for _ in range(EXECUTIONS)]
    for eid in eids:
        service.handle(
            eid, Submit(eid, "image-rotate", "image", "1", "async", "7", params={"angle": 90})
        )

    barrier = threading.Barrier(workers)
    outcomes: dict[uuid.UUID, list[str]] = {eid: [] for eid in eids}
    lock = threading.Lock()

    def worker(n: int) -> None:
        for eid in eids:
            barrier.wait(timeout=30)
            try:
                service.handle(eid, Start(f"worker-{n}", T0, DEFAULT_TIMEOUT))
                outcome = f"won:worker-{n}"
            except Exception as exc:  # anything but IllegalTransition fails the test below
                outcome = type(exc).__name__
            with lock:
                outcomes[eid].append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    for eid in eids:
        got = Counter(o if not o.startswith("won:") else "won" for o in outcomes[eid])
        assert got == {"won": 1, IllegalTransition.__name__: workers - 1}, (eid, outcomes[eid])
        history = service.history(eid)
        processing = [e.payload() for e in history if e.type.endswith(".Processing")]
        assert len(processing) == 1
        [winner] = [o.removeprefix("won:") for o in outcomes[eid] if o.startswith("won:")]
        assert processing[0].worker_id == winner
        assert processing[0].attempt == 1
        assert [e.version for e in history] == [0, 1]
        assert service.load(eid).state.status is Status.PROCESSING


def test_eight_workers_race_to_start_on_postgres(pg_store_url: str) -> None:
    store = PostgresEventStore(pg_store_url)
    store.setup()
    try:
        race(store, workers=8)
        assert store.verify_all().ok
    finally:
        store.close()


def test_four_workers_race_to_start_on_sqlite(sqlite_store_url: str) -> None:
    store = SQLiteEventStore.from_url(sqlite_store_url)
    store.setup()
    try:
        race(store, workers=4)
        assert store.verify_all().ok
    finally:
        store.close()
