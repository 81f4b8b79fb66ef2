"""The event store on PostgreSQL (psycopg 3): the backend for multi-process and Azure deployments.

An append is one INSERT in autocommit (``sql/``), inserting only if the stream's previous event is
stored with the hash the client chained from: a stream elsewhere than expected is refused. The
feed is read below the oldest running transaction (``sql/read-feed.sql``), so a tailing reader
never skips an event that commits late. ``wait_for`` is woken by LISTEN/NOTIFY (``notifying``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from events import pools
from events.appending import (
    KnownHeads,
    StoredIdentity,
    check_batch,
    recorded_events,
    resolve_duplicates,
)
from events.audit import verify_rows
from events.catalog import Catalog, catalog as execution_catalog
from events.connections import split_url, timeouts
from events.envelope import (
    GENESIS_HASH,
    SHARED_DECODE_FROM,
    NewEvent,
    RecordedEvent,
    chain,
    recorded_event,
    with_large_payloads,
)
from events.errors import EventStoreError, WrongExpectedVersion
from events.notifying import Notifications
from events.store import ANY, NO_STREAM, AppendResult, FeedStatus, VerifyReport

SQL_FILES = (
    "events-table.sql",
    "immutable-events.sql",
    "take-positions.sql",
    "anchor-tables.sql",  # events.anchors
)
_SQL = {
    name: resources.files("events.sql").joinpath(name).read_text()
    for name in (*SQL_FILES, "append-event.sql", "append-events.sql", "read-feed.sql")
}
# data and metadata as the exact stored text: recorded_event() parses them, verify hashes them.
COLUMNS = (
    "position, stream, version, event_id, type, schema_version, time, data::text, source, "
    "subject, metadata::text, hash"
)
# What readers select, FROM events joined to ``READ_TEXT``: a large payload is left out (NULL)
# and read once per process, through ``with_large_payloads``, however many of the process's
# followers read its event. The text is made once a row (OFFSET 0 keeps the planner from
# inlining it into both places, which made a feed read's conversions twice as many).
READ_TEXT = "CROSS JOIN LATERAL (SELECT data::text AS data_text OFFSET 0) AS read_text"
READ_COLUMNS = COLUMNS.replace(
    "data::text,",
    f"CASE WHEN octet_length(data_text) < {SHARED_DECODE_FROM} THEN data_text END,",
    1,
)
# Rows with an older transaction than every running one are final: nothing can commit before them
# (the same condition as in sql/read-feed.sql, which explains why it suffices).
HORIZON = "tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()))"


def _event_row(cursor: psycopg.Cursor) -> object:
    return recorded_event


def _read(conn: psycopg.Connection, events: list[RecordedEvent]) -> list[RecordedEvent]:
    """Events selected with ``READ_COLUMNS``, their large payloads filled in."""

    def fetch(event_id: UUID) -> str:
        row = conn.execute("SELECT data::text FROM events WHERE event_id = %s", (event_id,))
        return row.fetchone()[0]  # type: ignore[index]

    return with_large_payloads(events, fetch)


def _insert(
    stream: str, first: int, previous: bytes, events: Sequence[NewEvent], hashes: list[bytes]
) -> tuple[str, Sequence[object]]:
    """The INSERT for an append and its parameters: scalars for one event, arrays for more."""
    if len(events) == 1:
        e = events[0]
        return _SQL["append-event.sql"], (
            stream,
            first,
            e.id,
            e.type,
            e.schema_version,
            e.time,
            e.data_json,
            e.source,
            e.subject,
            e.metadata_json,
            hashes[0],
            previous,
        )
    return _SQL["append-events.sql"], {
        "stream": stream,
        "version": first,
        "previous": previous,
        "ids": [e.id for e in events],
        "types": [e.type for e in events],
        "schema_versions": [e.schema_version for e in events],
        "times": [e.time for e in events],
        "data": [e.data_json for e in events],
        "sources": [e.source for e in events],
        "subjects": [e.subject for e in events],
        "metadata": [e.metadata_json for e in events],
        "hashes": hashes,
    }


class PostgresEventStore:
    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        poll_interval: float = 0.25,
        catalog: Catalog = execution_catalog,
    ) -> None:
        self.catalog = catalog
        self.url, url_schema = split_url(url)
        self.schema = schema or url_schema
        self.channel = f"mt_events_{self.schema}"[:63]
        # enable_sort/enable_bitmapscan off: see sql/read-feed.sql. The process's timeouts too.
        self._kwargs = timeouts().postgres(
            f"-c search_path={self.schema}", "-c enable_sort=off", "-c enable_bitmapscan=off"
        )
        # Autocommit: an append is one statement, so it is its own transaction and needs one
        # round trip instead of three (BEGIN, INSERT, COMMIT); reads need no transaction. Each
        # call borrows a connection from the process's pool for these options (events.pools):
        # a few microseconds, and the process's connections stay bounded whatever its threads.
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._poll_interval = poll_interval
        self._heads = KnownHeads()
        self._notifications = Notifications(self.url, self._kwargs, self.channel)

    def _shared_pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = pools.acquire(self.url, **self._kwargs)
                pool = self._pool
        return pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self._shared_pool().connection() as conn:
            yield conn

    def setup(self) -> None:
        with psycopg.connect(self.url, autocommit=True, **self._kwargs) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            # One setup at a time: CREATE OR REPLACE races with itself on the catalog.
            conn.execute("SELECT pg_advisory_lock(7305512648190264)")
            try:
                for name in SQL_FILES:
                    conn.execute(_SQL[name])
            finally:
                conn.execute("SELECT pg_advisory_unlock(7305512648190264)")

    def close(self) -> None:
        self._notifications.close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pools.release(pool)

    # -- writing -----------------------------------------------------------------------------

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY
    ) -> AppendResult:
        check_batch(stream, events, expected_version, self.catalog)
        if expected_version != ANY:
            return self._append(stream, events, expected_version)
        # "Any" version: aim at the current head; if another writer moves it first, aim again.
        for _ in range(100):
            try:
                return self._append(stream, events, self._read_head(stream)[0])
            except WrongExpectedVersion:
                continue
        raise EventStoreError(f"stream {stream!r} kept moving; gave up appending at any version")

    def _previous_hash(self, stream: str, expected_version: int) -> bytes | None:
        """The hash of the stream's event at ``expected_version``, or None if there is none."""
        if expected_version == NO_STREAM:
            return GENESIS_HASH
        known = self._heads.get(stream)
        if known is not None and known[0] == expected_version:
            return known[1]
        version, previous = self._read_head(stream)
        return previous if version == expected_version else None

    def _append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        previous = self._previous_hash(stream, expected_version)
        first = expected_version + 1
        hashes: list[bytes] = []
        positions = []
        if previous is not None:
            link = previous
            for offset, event in enumerate(events):
                link = chain(link, event.digest(stream, first + offset))
                hashes.append(link)
            sql, params = _insert(stream, first, previous, events, hashes)
            with self._connection() as conn:
                try:
                    positions = self._write(conn, stream, sql, params)
                except psycopg.Error as exc:
                    # Release the position lock in case the error struck while it was held.
                    conn.execute("SELECT pg_advisory_unlock_all()")
                    if not isinstance(exc, pg_errors.UniqueViolation):
                        raise
        if not positions:
            # Either the stream is not at the expected version, or these events are a retry of
            # an append that was stored already (perhaps by a concurrent writer).
            self._heads.forget(stream)
            stored = self._stored_identities(events)
            if stored:
                return resolve_duplicates(stream, events, stored)
            raise WrongExpectedVersion(stream, expected_version, self._read_head(stream)[0])
        self._heads.remember(stream, first + len(events) - 1, hashes[-1])
        self._notifications.committed()
        first_position = min(row[0] for row in positions)
        return AppendResult(
            stream=stream,
            first_version=first,
            last_version=first + len(events) - 1,
            first_position=first_position,
            last_position=first_position + len(events) - 1,
            recorded=recorded_events(stream, first, first_position, events, hashes),
        )

    def _read_head(self, stream: str) -> tuple[int, bytes]:
        """The stream's last version and hash, from the table (NO_STREAM and the genesis hash)."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT version, hash FROM events WHERE stream = %s ORDER BY version DESC LIMIT 1",
                (stream,),
            ).fetchone()
        if row is None:
            return NO_STREAM, GENESIS_HASH
        self._heads.remember(stream, row[0], row[1])
        return row[0], row[1]

    def _write(self, conn: psycopg.Connection, stream: str, sql: str, params: object) -> list:
        """Insert (and so commit); the one seam where tests inject slow or failing transactions."""
        return conn.execute(sql, params).fetchall()

    def _stored_identities(self, events: Sequence[NewEvent]) -> dict[UUID, StoredIdentity]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT event_id, stream, version, position, type, data::text, subject "
                "FROM events WHERE event_id = ANY(%s)",
                ([e.id for e in events],),
            ).fetchall()
        return {r[0]: StoredIdentity(*r[1:]) for r in rows}

    # -- reading -----------------------------------------------------------------------------

    def read_stream(self, stream: str, from_version: int = 0) -> list[RecordedEvent]:
        with self._connection() as conn:
            cur = conn.cursor(binary=True, row_factory=_event_row)
            cur.execute(
                f"SELECT {READ_COLUMNS} FROM events {READ_TEXT} "
                "WHERE stream = %s AND version >= %s ORDER BY version",
                (stream, from_version),
            )
            events = _read(conn, cur.fetchall())
        self._heads.saw(stream, events)
        return events

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        stream_prefix: str | None = None,
    ) -> list[RecordedEvent]:
        with self._connection() as conn:
            cur = conn.cursor(binary=True, row_factory=_event_row)
            cur.execute(
                _SQL["read-feed.sql"],
                {
                    "after": after_position,
                    "limit": limit,
                    "types": list(types) if types else None,
                    "prefix": stream_prefix or None,
                    "shared_from": SHARED_DECODE_FROM,
                },
            )
            return _read(conn, cur.fetchall())

    def head_position(self) -> int:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT position FROM events WHERE {HORIZON} ORDER BY position DESC LIMIT 1"
            ).fetchone()
        return row[0] if row else 0

    def feed_status(self) -> FeedStatus:
        """The readable head, the newest event, and the oldest open write transactions when the
        feed is held back (a long transaction anywhere on the server does that)."""
        with self._connection() as conn:
            newest = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        readable = self.head_position()
        blockers: tuple[str, ...] = ()
        if newest > readable:
            with self._connection() as conn:
                rows = conn.execute(
                    "SELECT pid, datname, usename, state, now() - xact_start, "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 120) "
                    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
                    "AND pid <> pg_backend_pid() ORDER BY age(backend_xid) DESC LIMIT 3"
                ).fetchall()
            blockers = tuple(
                f"pid {pid} ({user}@{db}, {state}, transaction open for {age}): {query}"
                for pid, db, user, state, age, query in rows
            )
        return FeedStatus(readable_head=readable, newest_position=newest, held_back_by=blockers)

    def stream_version(self, stream: str) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT max(version) FROM events WHERE stream = %s", (stream,)
            ).fetchone()
        return NO_STREAM if row[0] is None else row[0]

    def streams(self, prefix: str | None = None) -> Iterator[str]:
        sql = "SELECT stream FROM events WHERE version = 0"
        params: tuple = ()
        if prefix:
            sql += " AND starts_with(stream, %s)"
            params = (prefix,)
        with self._connection() as conn:
            names = [r[0] for r in conn.execute(sql + " ORDER BY position", params)]
        yield from names

    def wait_for(self, after_position: int, timeout: float) -> bool:
        return self._notifications.wait_for(
            self.head_position, after_position, timeout, self._poll_interval
        )

    # -- auditing ----------------------------------------------------------------------------

    def _verify(self, where: str, params: tuple) -> VerifyReport:
        with self._connection() as conn, conn.transaction():
            cur = conn.cursor(name="verify")
            cur.itersize = 5000
            cur.execute(f"SELECT {COLUMNS} FROM events {where} ORDER BY stream, version", params)
            return verify_rows(cur)

    def verify(self, stream: str) -> VerifyReport:
        return self._verify("WHERE stream = %s", (stream,))

    def verify_all(self) -> VerifyReport:
        return self._verify("", ())
