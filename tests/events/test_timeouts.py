"""Every database connection waits a bounded time: to open, and for a statement (on SQLite: for
another writer's lock). ``unavailable`` tells those failures from mistakes in a statement."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from events.connections import Timeouts, set_timeouts, split_url, timeouts, unavailable
from events.database import Database
from events.opening import open_store


@pytest.fixture
def quick() -> Iterator[Timeouts]:
    """A second to connect and per statement, for this test's connections."""
    before = timeouts()
    set_timeouts(Timeouts(connect=1, statement=1.0))
    try:
        yield timeouts()
    finally:
        set_timeouts(before)


def test_a_statement_past_the_timeout_is_cancelled_by_postgresql(
    pg_store_url: str, quick: Timeouts
) -> None:
    with Database(pg_store_url) as db:
        started = time.monotonic()
        with pytest.raises(psycopg.Error) as caught:
            db.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
        assert unavailable(caught.value)
        assert db.execute("SELECT 1") == [(1,)]  # the connection goes on


def test_the_event_store_keeps_the_statement_timeout_too(
    pg_store_url: str, quick: Timeouts
) -> None:
    store = open_store(pg_store_url)
    store.setup()
    libpq_url, schema = split_url(pg_store_url)
    locked = threading.Event()

    def hold() -> None:
        with psycopg.connect(libpq_url, options=f"-c search_path={schema}") as conn:
            conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            locked.set()
            time.sleep(3)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        with pytest.raises(psycopg.Error) as caught:
            store.head_position()
        assert time.monotonic() - started < 2.5
        assert unavailable(caught.value)
    finally:
        holder.join()
        store.close()


def test_connecting_to_a_server_that_never_answers_gives_up_after_the_connect_timeout(
    quick: Timeouts,
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never speaks
    port = silent.getsockname()[1]
    try:
        with Database(f"postgresql://nobody@127.0.0.1:{port}/db") as db:
            started = time.monotonic()
            with pytest.raises(psycopg.OperationalError) as caught:
                db.execute("SELECT 1")
            assert time.monotonic() - started < 3
            assert unavailable(caught.value)
    finally:
        silent.close()


def test_on_sqlite_a_writer_waits_for_another_ones_lock_only_the_timeout(
    tmp_path: Path, quick: Timeouts
) -> None:
    path = tmp_path / "rm.sqlite3"
    with Database(f"sqlite:///{path}") as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's write
        try:
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError) as caught:
                db.execute("INSERT INTO t VALUES (1)")
            assert 0.8 < time.monotonic() - started < 2.5
            assert unavailable(caught.value)
        finally:
            other.execute("ROLLBACK")
            other.close()


def test_a_mistake_in_a_statement_is_not_unavailability(tmp_path: Path, pg_store_url: str) -> None:
    with Database(f"sqlite:///{tmp_path / 'rm.sqlite3'}") as db:
        with pytest.raises(sqlite3.OperationalError) as caught:
            db.execute("SELECT nothing FROM nowhere")
        assert not unavailable(caught.value)
    with Database(pg_store_url) as db:
        with pytest.raises(psycopg.Error) as pg_caught:
            db.execute("SELECT nothing FROM nowhere")
        assert not unavailable(pg_caught.value)


def test_the_postgresql_options_carry_both_timeouts() -> None:
    options = Timeouts(connect=5, statement=30.0).postgres("-c search_path=s")
    assert options == {
        "connect_timeout": 5,
        "options": "-c search_path=s -c statement_timeout=30000",
    }
