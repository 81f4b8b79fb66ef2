"""The global feed never lets a tailing reader skip an event that commits late (PostgreSQL).

Positions are taken when a transaction inserts, but transactions commit in any order. A reader
that simply asks for "position > last seen" skips an event whose transaction took a lower position
and committed after a higher one had been read. These tests show that failure on a naive query and
prove the store's read_all free of it, with many writers, slow transactions and rollbacks.
"""

from __future__ import annotations

import random
import threading
import time
import uuid

import psycopg
import pytest

from events.postgres_store import PostgresEventStore
from events.store import NO_STREAM
from tests.events.factories import progress


class SlowOrFailingStore(PostgresEventStore):
    """A fault-injecting store for tests: a hook runs between insert and commit."""

    def __init__(self, url: str, hook) -> None:
        super().__init__(url)
        self.hook = hook

    def _write(self, conn, stream, sql, params):
        with conn.transaction():  # the store's connections autocommit; hold a transaction open
            positions = conn.execute(sql, params).fetchall()
            self.hook(stream)  # may sleep, or raise to roll the transaction back
        return positions


class Abort(Exception):
    pass


def naive_read(url: str, schema: str, after: int) -> list[int]:
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
        rows = conn.execute(
            "SELECT position FROM events WHERE position > %s ORDER BY position", (after,)
        ).fetchall()
    return [r[0] for r in rows]


def test_a_late_commit_is_skipped_by_a_naive_reader_but_not_by_read_all(
    pg_store_url: str, pg_schema: str
) -> None:
    inside, release = threading.Event(), threading.Event()

    def hold_slow_stream(stream: str) -> None:
        if stream == "execution-slow":
            inside.set()
            release.wait(10)

    store = SlowOrFailingStore(pg_store_url, hold_slow_stream)
    store.setup()
    try:
        slow = threading.Thread(
            target=store.append, args=("execution-slow", progress(1), NO_STREAM)
        )
        slow.start()
        assert inside.wait(10)  # the slow transaction holds a position and has not committed
        fast = store.append("execution-fast", progress(1), NO_STREAM)

        url = pg_store_url.split("?")[0]
        naive_seen = naive_read(url, pg_schema, 0)
        assert naive_seen == [fast.first_position]  # the naive reader's checkpoint moves past…
        assert store.read_all(0) == []  # …while read_all waits for the older transaction

        release.set()
        slow.join()
        (slow_event,) = store.read_stream("execution-slow")
        assert slow_event.position < fast.first_position
        assert naive_read(url, pg_schema, naive_seen[-1]) == []  # skipped for good
        assert [e.stream for e in store.read_all(0)] == ["execution-slow", "execution-fast"]
    finally:
        release.set()
        store.close()


def test_tailing_reader_sees_every_committed_event_exactly_once_in_order(
    pg_store_url: str,
) -> None:
    rng = random.Random(1234)
    rng_lock = threading.Lock()

    def chaos(stream: str) -> None:
        with rng_lock:
            roll = rng.random()
            pause = rng.uniform(0.001, 0.05)
        if roll < 0.15:
            raise Abort(stream)  # rolled back: must never be seen
        if roll < 0.45:
            time.sleep(pause)  # slowed inside the transaction, after taking its positions

    store = SlowOrFailingStore(pg_store_url, chaos)
    store.setup()
    committed: list[uuid.UUID] = []
    aborted: list[uuid.UUID] = []
    record = threading.Lock()
    writers_done = threading.Event()

    def writer(worker: int) -> None:
        for i in range(40):
            events = progress(rng.randint(1, 3) if worker % 2 else 1)
            try:
                store.append(f"execution-w{worker}-{i}", events, NO_STREAM)
            except Abort:
                with record:
                    aborted.extend(e.id for e in events)
            else:
                with record:
                    committed.extend(e.id for e in events)

    seen = []

    def reader() -> None:
        after = 0
        while True:
            finished = writers_done.is_set()
            page = store.read_all(after, limit=50)
            if page:
                seen.extend(page)
                after = page[-1].position
            elif finished:
                return
            else:
                store.wait_for(after, timeout=0.5)

    tail = threading.Thread(target=reader)
    tail.start()
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    tail.join(timeout=60)
    store.close()

    assert not tail.is_alive()
    assert aborted, "the test should roll some transactions back"
    positions = [e.position for e in seen]
    assert positions == sorted(positions) and len(positions) == len(set(positions))
    seen_ids = [e.id for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event was delivered twice"
    assert set(seen_ids) == set(committed), "a committed event was skipped"
    assert not set(seen_ids) & set(aborted)


@pytest.mark.parametrize("statement", ["UPDATE events SET type = 'x'", "DELETE FROM events"])
def test_postgres_refuses_update_and_delete(pg_store_url: str, pg_schema: str, statement) -> None:
    store = PostgresEventStore(pg_store_url)
    store.setup()
    store.append("execution-1", progress(2), NO_STREAM)
    url = pg_store_url.split("?")[0]
    with psycopg.connect(url, options=f"-c search_path={pg_schema}") as conn:
        with pytest.raises(psycopg.Error, match="events are immutable"):
            conn.execute(statement)
        conn.rollback()
        with pytest.raises(psycopg.Error, match="events are immutable"):
            conn.execute("TRUNCATE events")
    assert len(store.read_stream("execution-1")) == 2
    store.close()


def test_feed_status_names_the_transaction_that_holds_readers_back(pg_store_url: str) -> None:
    store = PostgresEventStore(pg_store_url)
    store.setup()
    url = pg_store_url.split("?")[0]
    try:
        store.append("execution-before", progress(1), NO_STREAM)
        with psycopg.connect(url, application_name="long-report") as blocker:
            blocker.execute("CREATE TEMP TABLE hold (x int)")  # a write: it takes an xid
            blocker.execute("INSERT INTO hold VALUES (1)")
            after = store.append("execution-after", progress(1), NO_STREAM)

            status = store.feed_status()
            assert status.held_back
            assert status.newest_position == after.first_position
            assert status.readable_head < after.first_position
            assert any(f"pid {blocker.info.backend_pid} " in b for b in status.held_back_by)
            blocker.rollback()
        assert store.wait_for(after.first_position - 1, timeout=5)
        assert not store.feed_status().held_back
    finally:
        store.close()
