"""An attacker with write access to the database and our code, but not the audit key.

Each function changes a store behind its back with raw SQL, as issue 16 describes: the store's
triggers refuse UPDATE and DELETE on the events table, so the attacker drops (SQLite) or disables
(PostgreSQL) them first. ``rewrite_and_rechain`` recomputes the hash chain with the store's own
functions, so that every chain still verifies.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from events.connections import split_url, sqlite_path
from events.envelope import GENESIS_HASH, chain, content_digest


@contextmanager
def raw(store_url: str) -> Iterator[Any]:
    """A connection to the store's database with the events table's guards out of the way;
    statements use ``?`` on both backends; committed on leaving."""
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(sqlite_path(store_url))
        try:
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
            ).fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            yield _Sqlite(conn)
            conn.commit()
        finally:
            conn.close()
        return
    url, schema = split_url(store_url)
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        yield _Postgres(conn)
        conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


class _Sqlite:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()


class _Postgres:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        cur = self.conn.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


def delete_last_event(store_url: str, stream: str) -> int:
    """Delete the stream's last event; the version it was."""
    with raw(store_url) as db:
        (last,) = db.execute("SELECT max(version) FROM events WHERE stream = ?", (stream,))[0]
        db.execute("DELETE FROM events WHERE stream = ? AND version = ?", (stream, last))
    return last


def delete_stream(store_url: str, stream: str) -> None:
    with raw(store_url) as db:
        db.execute("DELETE FROM events WHERE stream = ?", (stream,))


def rewrite_and_rechain(store_url: str, stream: str, version: int, data_json: str) -> None:
    """Replace one event's payload and recompute the hashes from there to the stream's end."""
    data = "data::text" if store_url.startswith("postgres") else "data"
    cast = "?::json" if store_url.startswith("postgres") else "?"
    metadata = "metadata::text" if store_url.startswith("postgres") else "metadata"
    with raw(store_url) as db:
        rows = db.execute(
            f"SELECT version, event_id, type, schema_version, time, {data}, source, subject, "
            f"{metadata}, hash FROM events WHERE stream = ? ORDER BY version",
            (stream,),
        )
        previous = GENESIS_HASH
        for row in rows:
            at, event_id, etype, sv, when, text, source, subject, meta, stored = row
            if at < version:
                previous = bytes(stored)
                continue
            if at == version:
                text = data_json
            if isinstance(event_id, bytes):
                event_id = UUID(bytes=event_id)
            if isinstance(when, str):
                when = datetime.fromisoformat(when)
            digest = content_digest(
                event_id, stream, at, etype, sv, when, text, source, subject, meta
            )
            previous = chain(previous, digest)
            db.execute(
                f"UPDATE events SET data = {cast}, hash = ? WHERE stream = ? AND version = ?",
                (text, previous, stream, at),
            )
