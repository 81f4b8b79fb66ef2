"""The floor to compare against: each event as a single-row INSERT and a commit into a plain table.

The table has the columns an event store needs (a generated position, stream and version unique
together, a unique event id, JSON data and metadata) and nothing else: no expected-version check, no
hash chain, no ordering guarantee for readers. Each writer thread has its own connection. Opening a
contender creates the table and the connections; leaving it closes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tests.bench.timing import Contender, one_event_per_call
from tests.bench.workload import EXECUTION_EVENTS, Execution, build_executions

PG_TABLE = """
CREATE TABLE baseline_events (
    position bigserial PRIMARY KEY,
    stream text NOT NULL,
    version integer NOT NULL,
    event_id uuid NOT NULL UNIQUE,
    type text NOT NULL,
    data json NOT NULL,
    metadata json NOT NULL,
    time timestamptz NOT NULL,
    UNIQUE (stream, version)
)
"""

SQLITE_TABLE = """
CREATE TABLE IF NOT EXISTS baseline_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    time TEXT NOT NULL,
    UNIQUE (stream, version)
)
"""

INSERT = (
    "INSERT INTO baseline_events (stream, version, event_id, type, data, metadata, time) "
    "VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0})"
)
PG_INSERT = INSERT.format("%s")
SQLITE_INSERT = INSERT.format("?")


@contextmanager
def postgres_baseline(url: str, schema: str, writers: int) -> Iterator[Contender[Execution]]:
    """Plain psycopg 3: ``execute(INSERT)`` then ``commit()`` per event (BEGIN, INSERT, COMMIT)."""
    options = f"-c search_path={schema}"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        conn.execute(PG_TABLE)
    conns: list[psycopg.Connection] = []
    try:
        conns.extend(psycopg.connect(url, options=options) for _ in range(writers))

        def append_one(index: int, execution: Execution, version: int) -> None:
            conn = conns[index]
            event = execution.events[version]
            conn.execute(
                PG_INSERT,
                (
                    execution.stream,
                    version,
                    event.id,
                    event.type,
                    event.data_json,
                    event.metadata_json,
                    event.time,
                ),
            )
            conn.commit()

        yield Contender(
            "baseline: INSERT + commit, psycopg 3",
            build_executions,
            EXECUTION_EVENTS,
            one_event_per_call(append_one),
        )
    finally:
        for conn in conns:
            conn.close()


@contextmanager
def sqlite_baseline(path: str, synchronous: str, writers: int) -> Iterator[Contender[Execution]]:
    """Plain sqlite3 in WAL mode: ``BEGIN IMMEDIATE``, INSERT, ``COMMIT`` per event."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    setup = connect()
    try:
        setup.execute(SQLITE_TABLE)
    finally:
        setup.close()
    conns: list[sqlite3.Connection] = []
    try:
        conns.extend(connect() for _ in range(writers))

        def append_one(index: int, execution: Execution, version: int) -> None:
            conn = conns[index]
            event = execution.events[version]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                SQLITE_INSERT,
                (
                    execution.stream,
                    version,
                    str(event.id),
                    event.type,
                    event.data_json,
                    event.metadata_json,
                    event.time.isoformat(timespec="microseconds"),
                ),
            )
            conn.execute("COMMIT")

        yield Contender(
            "baseline: BEGIN IMMEDIATE + INSERT + COMMIT",
            build_executions,
            EXECUTION_EVENTS,
            one_event_per_call(append_one),
        )
    finally:
        for conn in conns:
            conn.close()
