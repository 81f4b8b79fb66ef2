"""The embedded event store on SQLite (WAL mode): the default on one machine.

SQLite has one writer at a time (``BEGIN IMMEDIATE``), so positions are handed out in commit order
and the global feed cannot have late-committing gaps. Each thread gets its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from uuid import UUID

from events.appending import (
    AppendSignal,
    KnownHeads,
    StoredIdentity,
    check_batch,
    recorded_events,
    resolve_duplicates,
)
from events.audit import verify_rows
from events.catalog import Catalog, catalog as execution_catalog
from events.connections import sqlite_path, timeouts, writer_lock
from events.envelope import (
    GENESIS_HASH,
    SHARED_DECODE_FROM,
    NewEvent,
    RecordedEvent,
    chain,
    recorded_event,
    with_large_payloads,
)
from events.errors import WrongExpectedVersion
from events.store import ANY, NO_STREAM, AppendResult, FeedStatus, VerifyReport

# The audit anchors beside the events (events.anchors).
ANCHOR_TABLES = resources.files("events.sql").joinpath("anchor-tables.sqlite.sql").read_text()

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id BLOB NOT NULL UNIQUE,  -- the UUID's 16 bytes: parsing text costs readers twice as much
    type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    time TEXT NOT NULL,
    data TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    metadata TEXT NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE (stream, version)
);
CREATE TRIGGER IF NOT EXISTS events_immutable_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS events_immutable_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable: DELETE is not allowed'); END;
"""

COLUMNS = (
    "position, stream, version, event_id, type, schema_version, time, data, source, subject, "
    "metadata, hash"
)

# WAL with synchronous=FULL: every commit is on disk before append returns (events are the truth).
SYNCHRONOUS = "FULL"


# What readers select: a large payload is left out (NULL) and read once per process, through
# ``with_large_payloads``, however many of the process's followers read its event.
READ_COLUMNS = COLUMNS.replace(
    " data,", f" CASE WHEN length(data) < {SHARED_DECODE_FROM} THEN data END,", 1
)


def _row_to_event(row: tuple) -> RecordedEvent:
    return recorded_event(
        (*row[:3], UUID(bytes=row[3]), *row[4:6], datetime.fromisoformat(row[6]), *row[7:])
    )


def _read(conn: sqlite3.Connection, rows: Iterable[tuple]) -> list[RecordedEvent]:
    """Rows selected with ``READ_COLUMNS`` as events, their large payloads filled in."""

    def fetch(event_id: UUID) -> str:
        return conn.execute(
            "SELECT data FROM events WHERE event_id = ?", (event_id.bytes,)
        ).fetchone()[0]

    return with_large_payloads([_row_to_event(r) for r in rows], fetch)


class SQLiteEventStore:
    def __init__(
        self, path: str | Path, *, poll_interval: float = 0.2, catalog: Catalog = execution_catalog
    ) -> None:
        self.path = str(path)
        self.catalog = catalog
        self._local = threading.local()
        # Every open connection, by the thread that opened it: close() closes them all, and a
        # new connection first closes those of threads that have ended (a server may run each
        # request in a new thread; their connections would otherwise stay open).
        self._all: dict[threading.Thread, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._appended = AppendSignal()
        self._poll_interval = poll_interval
        self._heads = KnownHeads()
        self._writer = writer_lock(self.path)

    @classmethod
    def from_url(cls, url: str, **options: object) -> SQLiteEventStore:
        return cls(sqlite_path(url), **options)  # type: ignore[arg-type]

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            wait = timeouts().statement  # for another process's writer
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=wait
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            conn.execute(f"PRAGMA busy_timeout={round(wait * 1000)}")
            self._local.conn = conn
            with self._lock:
                for thread in [t for t in self._all if not t.is_alive()]:
                    self._all.pop(thread).close()
                self._all[threading.current_thread()] = conn
        return conn

    def setup(self) -> None:
        self._conn().executescript(SCHEMA + ANCHOR_TABLES)

    def close(self) -> None:
        with self._lock:
            for conn in self._all.values():
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- writing -----------------------------------------------------------------------------

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY
    ) -> AppendResult:
        check_batch(stream, events, expected_version, self.catalog)
        conn = self._conn()
        with self._writer:
            return self._append(conn, stream, events, expected_version)

    def _append(
        self,
        conn: sqlite3.Connection,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
    ) -> AppendResult:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result, last_hash = self._insert(conn, stream, events, expected_version)
        except (WrongExpectedVersion, sqlite3.IntegrityError) as exc:
            conn.execute("ROLLBACK")
            # Not at the expected version, or the same event ids again: a retry is answered with
            # the first result even when the stream has moved on since.
            stored = self._stored_identities(conn, events)
            if stored:
                return resolve_duplicates(stream, events, stored)
            if isinstance(exc, WrongExpectedVersion):
                raise
            raise WrongExpectedVersion(
                stream, expected_version, self.stream_version(stream)
            ) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._heads.remember(stream, result.last_version, last_hash)
        self._appended.notify()
        return result

    def _head(
        self, conn: sqlite3.Connection, stream: str, expected_version: int
    ) -> tuple[int, bytes]:
        """The stream's last version and hash: known without a query in the common cases."""
        if expected_version == NO_STREAM:
            return NO_STREAM, GENESIS_HASH  # if the stream exists, the insert meets UNIQUE
        known = self._heads.get(stream)
        if known is not None and known[0] == expected_version:
            # Version n's hash never changes; if the stream moved past n, the insert meets UNIQUE.
            return known
        row = conn.execute(
            "SELECT version, hash FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1",
            (stream,),
        ).fetchone()
        head = (row[0], row[1]) if row else (NO_STREAM, GENESIS_HASH)
        if expected_version != ANY and expected_version != head[0]:
            raise WrongExpectedVersion(stream, expected_version, head[0])
        return head

    def _insert(
        self,
        conn: sqlite3.Connection,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
    ) -> tuple[AppendResult, bytes]:
        head_version, previous = self._head(conn, stream, expected_version)
        rows = []
        hashes = []
        for offset, event in enumerate(events):
            version = head_version + 1 + offset
            previous = chain(previous, event.digest(stream, version))
            hashes.append(previous)
            rows.append(
                (
                    stream,
                    version,
                    event.id.bytes,
                    event.type,
                    event.schema_version,
                    event.time.isoformat(timespec="microseconds"),
                    event.data_json,
                    event.source,
                    event.subject,
                    event.metadata_json,
                    previous,
                )
            )
        conn.executemany(
            "INSERT INTO events (stream, version, event_id, type, schema_version, time, data, "
            "source, subject, metadata, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        # One writer at a time and AUTOINCREMENT: this append's positions are consecutive.
        last_position = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        first_position = last_position - len(events) + 1
        result = AppendResult(
            stream=stream,
            first_version=head_version + 1,
            last_version=head_version + len(events),
            first_position=first_position,
            last_position=last_position,
            recorded=recorded_events(stream, head_version + 1, first_position, events, hashes),
        )
        return result, previous

    def _stored_identities(
        self, conn: sqlite3.Connection, events: Sequence[NewEvent]
    ) -> dict[UUID, StoredIdentity]:
        ids = [e.id.bytes for e in events]
        rows = conn.execute(
            "SELECT event_id, stream, version, position, type, data, subject FROM events "
            f"WHERE event_id IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall()
        return {UUID(bytes=r[0]): StoredIdentity(*r[1:]) for r in rows}

    # -- reading -----------------------------------------------------------------------------

    def read_stream(self, stream: str, from_version: int = 0) -> list[RecordedEvent]:
        conn = self._conn()
        rows = conn.execute(
            f"SELECT {READ_COLUMNS} FROM events WHERE stream = ? AND version >= ? ORDER BY version",
            (stream, from_version),
        ).fetchall()
        events = _read(conn, rows)
        self._heads.saw(stream, events)
        return events

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        stream_prefix: str | None = None,
    ) -> list[RecordedEvent]:
        where = ["position > ?"]
        params: list[object] = [after_position]
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        if stream_prefix:
            where.append("substr(stream, 1, ?) = ?")
            params.extend([len(stream_prefix), stream_prefix])
        params.append(limit)
        conn = self._conn()
        rows = conn.execute(
            f"SELECT {READ_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY position LIMIT ?",
            params,
        ).fetchall()
        return _read(conn, rows)

    def head_position(self) -> int:
        row = self._conn().execute("SELECT max(position) FROM events").fetchone()
        return row[0] or 0

    def feed_status(self) -> FeedStatus:
        head = self.head_position()  # one writer at a time: everything committed is readable
        return FeedStatus(readable_head=head, newest_position=head)

    def stream_version(self, stream: str) -> int:
        row = (
            self._conn()
            .execute("SELECT max(version) FROM events WHERE stream = ?", (stream,))
            .fetchone()
        )
        return NO_STREAM if row[0] is None else row[0]

    def streams(self, prefix: str | None = None) -> Iterator[str]:
        sql = "SELECT stream FROM events WHERE version = 0"
        params: tuple = ()
        if prefix:
            sql += " AND substr(stream, 1, ?) = ?"
            params = (len(prefix), prefix)
        for (name,) in self._conn().execute(sql + " ORDER BY position", params):
            yield name

    def wait_for(self, after_position: int, timeout: float) -> bool:
        # Appends in this process wake us at once; another process's appends are seen by polling.
        return self._appended.wait_for(
            self.head_position, after_position, timeout, self._poll_interval
        )

    # -- auditing ----------------------------------------------------------------------------

    def _verify_rows(self, where: str, params: tuple) -> VerifyReport:
        rows = self._conn().execute(
            f"SELECT {COLUMNS} FROM events {where} ORDER BY stream, version", params
        )
        return verify_rows(rows)

    def verify(self, stream: str) -> VerifyReport:
        return self._verify_rows("WHERE stream = ?", (stream,))

    def verify_all(self) -> VerifyReport:
        return self._verify_rows("", ())
