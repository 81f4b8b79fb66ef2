"""Checkpoints: the last feed position each reader of the feed has dealt with, by name.

Projections write theirs in the transaction that applies a batch, locking the row first, so two
writers never apply the same events twice; the relay and the Functions host move theirs after
the work. (The table keeps its first name, ``proj_checkpoints``: deployments have rows in it.)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from events.database import Database

TABLE = "proj_checkpoints"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    name TEXT PRIMARY KEY,
    position {{bigint}} NOT NULL,
    updated_at {{ts}} NOT NULL,
    last_error TEXT,
    failed_at {{ts}}
)"""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    name: str
    position: int
    updated_at: datetime
    last_error: str | None
    failed_at: datetime | None


def create_table(db: Database, names: list[str]) -> None:
    db.execute(db.ddl(DDL))
    db.executemany(
        f"INSERT INTO {TABLE} (name, position, updated_at) VALUES (?, 0, ?) "
        "ON CONFLICT (name) DO NOTHING",
        [(name, datetime.now(UTC)) for name in names],
    )


def read_all(db: Database) -> dict[str, Checkpoint]:
    rows = db.execute(f"SELECT name, position, updated_at, last_error, failed_at FROM {TABLE}")
    return {row[0]: Checkpoint(*row) for row in rows}


def position(db: Database, name: str) -> int:
    """Where the reader called ``name`` is (0 before its first batch)."""
    rows = db.execute(f"SELECT position FROM {TABLE} WHERE name = ?", (name,))
    return rows[0][0] if rows else 0


def locked_position(db: Database, name: str) -> int:
    """The checkpoint, locked until the caller's transaction ends (0 when there is none)."""
    lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
    rows = db.execute(f"SELECT position FROM {TABLE} WHERE name = ?{lock}", (name,))
    return rows[0][0] if rows else 0


def write(db: Database, name: str, position: int) -> None:
    """Move the checkpoint (inside the batch's transaction) and clear any recorded error."""
    db.execute(
        f"INSERT INTO {TABLE} (name, position, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "updated_at = excluded.updated_at, last_error = NULL, failed_at = NULL",
        (name, position, datetime.now(UTC)),
    )


def advance(db: Database, name: str, position: int) -> None:
    """Move the checkpoint forward to ``position`` unless it is already past it.

    For feed readers that may run twice at once (the outbox relay in the web process and its
    timer): the slower one must not drag the checkpoint back.
    """
    db.execute(
        f"INSERT INTO {TABLE} (name, position, updated_at) VALUES (?, ?, ?) "
        f"ON CONFLICT (name) DO UPDATE SET position = CASE WHEN excluded.position > "
        f"{TABLE}.position THEN excluded.position ELSE {TABLE}.position END, "
        "updated_at = excluded.updated_at, last_error = NULL, failed_at = NULL",
        (name, position, datetime.now(UTC)),
    )


def record_error(db: Database, name: str, error: str) -> None:
    now = datetime.now(UTC)
    db.execute(
        f"INSERT INTO {TABLE} (name, position, updated_at, last_error, failed_at) "
        "VALUES (?, 0, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "last_error = excluded.last_error, failed_at = excluded.failed_at",
        (name, now, error[:2000], now),
    )


class StoredCheckpoint:
    """One reader's checkpoint row, for readers that move it after their work (the relay).

    It keeps one connection (opening one on PostgreSQL costs more than the write), shared under a
    lock by the reader's thread and whoever asks for its status, and only ever moves forward:
    two such readers at once (the web's relay and its timer) never drag it back.
    """

    def __init__(self, database_url: str, name: str) -> None:
        self.database_url = database_url
        self.name = name
        self._db = Database(database_url)
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self._lock:
            create_table(self._db, [self.name])

    def load(self) -> int:
        with self._lock:
            return position(self._db, self.name)

    def save(self, at: int) -> None:
        with self._lock:
            advance(self._db, self.name, at)

    def record_error(self, error: str) -> None:
        with self._lock:
            record_error(self._db, self.name, error)

    def read(self) -> Checkpoint | None:
        with self._lock:
            return read_all(self._db).get(self.name)

    def close(self) -> None:
        with self._lock:
            self._db.close()
