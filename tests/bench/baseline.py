"""The floor to compare against: plain INSERTs and commits into a plain table.

The single-event baseline inserts each event as one row in its own transaction; the batch baseline
inserts a 100-event execution as 100 rows in one transaction (on PostgreSQL one ``INSERT … SELECT
FROM unnest`` statement with binary array parameters on an autocommit connection: one round trip,
as the store's batch append; on SQLite ``BEGIN IMMEDIATE``, ``executemany``, ``COMMIT``).
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

from tests.bench.timing import Contender, one_event_per_call, one_execution_per_call
from tests.bench.workload import (
    EXECUTION_EVENTS,
    LONG_EXECUTION_EVENTS,
    Execution,
    LongExecutions,
    build_executions,
)

BATCH_LABEL = "baseline: 100-row INSERT + commit"

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
# A whole execution in one statement, versions 0, 1, …; arrays travel in binary (as the store's).
PG_INSERT_MANY = """
INSERT INTO baseline_events (stream, version, event_id, type, data, metadata, time)
SELECT %(stream)b::text, u.ord::integer - 1, u.id, u.type, u.d, u.md, u.t
FROM unnest(%(ids)b::uuid[], %(types)b::text[], %(data)b::json[], %(metadata)b::json[],
            %(times)b::timestamptz[]) WITH ORDINALITY AS u(id, type, d, md, t, ord)
"""


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


def _sqlite_connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _sqlite_create(path: str, synchronous: str) -> None:
    setup = _sqlite_connect(path, synchronous)
    try:
        setup.execute(SQLITE_TABLE)
    finally:
        setup.close()


def _sqlite_row(execution: Execution, version: int) -> tuple[object, ...]:
    event = execution.events[version]
    return (
        execution.stream,
        version,
        str(event.id),
        event.type,
        event.data_json,
        event.metadata_json,
        event.time.isoformat(timespec="microseconds"),
    )


@contextmanager
def sqlite_baseline(path: str, synchronous: str, writers: int) -> Iterator[Contender[Execution]]:
    """Plain sqlite3 in WAL mode: ``BEGIN IMMEDIATE``, INSERT, ``COMMIT`` per event."""
    _sqlite_create(path, synchronous)
    conns: list[sqlite3.Connection] = []
    try:
        conns.extend(_sqlite_connect(path, synchronous) for _ in range(writers))

        def append_one(index: int, execution: Execution, version: int) -> None:
            conn = conns[index]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(SQLITE_INSERT, _sqlite_row(execution, version))
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


@contextmanager
def postgres_batch_baseline(url: str, schema: str) -> Iterator[Contender[Execution]]:
    """One writer, one autocommit ``INSERT … SELECT FROM unnest`` per 100-event execution."""
    options = f"-c search_path={schema}"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        conn.execute(PG_TABLE)

        def append_all(execution: Execution) -> None:
            events = execution.events
            conn.execute(
                PG_INSERT_MANY,
                {
                    "stream": execution.stream,
                    "ids": [e.id for e in events],
                    "types": [e.type for e in events],
                    "data": [e.data_json for e in events],
                    "metadata": [e.metadata_json for e in events],
                    "times": [e.time for e in events],
                },
            )

        yield Contender(
            BATCH_LABEL,
            LongExecutions().build_many,
            LONG_EXECUTION_EVENTS,
            one_execution_per_call(append_all),
        )


@contextmanager
def sqlite_batch_baseline(path: str, synchronous: str) -> Iterator[Contender[Execution]]:
    """One writer: ``BEGIN IMMEDIATE``, ``executemany`` of 100 rows, ``COMMIT`` per execution."""
    _sqlite_create(path, synchronous)
    conn = _sqlite_connect(path, synchronous)
    try:

        def append_all(execution: Execution) -> None:
            rows = [_sqlite_row(execution, v) for v in range(len(execution.events))]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SQLITE_INSERT, rows)
            conn.execute("COMMIT")

        yield Contender(
            BATCH_LABEL,
            LongExecutions().build_many,
            LONG_EXECUTION_EVENTS,
            one_execution_per_call(append_all),
        )
    finally:
        conn.close()
