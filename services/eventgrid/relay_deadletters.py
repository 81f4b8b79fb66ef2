"""The relay's dead letters: stored events Event Grid will never take, set aside so the rest flow.

Event Grid refuses a publish over 1 MB, counted in the bytes the SDK sends. An event that is over
it on its own (or that the topic refuses with a 413 when sent alone) can never be published, and
retrying it would hold every later event back, everyone's. The relay records it here, one row per
event (its id, feed position, type, size and the reason), moves its checkpoint past it and goes
on; ``magictoolbox relay status`` shows the count and the latest. The event itself stays in the
store, where it always was: only its publication is given up.

The table sits beside the relay's checkpoint, in the read-model database. An event recorded twice
(a relay that stopped between the record and the checkpoint) keeps its first row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from events.database import Database

TABLE = "relay_deadletters"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id TEXT PRIMARY KEY,
    position {{bigint}} NOT NULL,
    event_type TEXT NOT NULL,
    subject TEXT NOT NULL,
    size {{bigint}} NOT NULL,
    reason TEXT NOT NULL,
    dead_at {{ts}} NOT NULL
)"""
_COLUMNS = "event_id, position, event_type, subject, size, reason, dead_at"


@dataclass(frozen=True, slots=True)
class RelayDeadLetter:
    """An event the relay gave up publishing: ``size`` is the bytes the SDK would send for it
    alone (a one-event batch)."""

    event_id: str
    position: int
    event_type: str
    subject: str
    size: int
    reason: str
    dead_at: datetime


class StoredDeadLetters:
    """The relay's dead letters in a database (SQLite or PostgreSQL), one connection shared
    under a lock, as ``events.checkpoints.StoredCheckpoint`` keeps the checkpoint."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._db = Database(database_url)
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self._lock:
            create_table(self._db)

    def add(self, letter: RelayDeadLetter) -> None:
        with self._lock:
            add(self._db, letter)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def create_table(db: Database) -> None:
    db.execute(db.ddl(DDL))


def add(db: Database, letter: RelayDeadLetter) -> None:
    db.execute(
        f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (event_id) DO NOTHING",
        (
            letter.event_id,
            letter.position,
            letter.event_type,
            letter.subject,
            letter.size,
            letter.reason[:2000],
            letter.dead_at,
        ),
    )


def count(db: Database) -> int:
    return db.execute(f"SELECT COUNT(*) FROM {TABLE}")[0][0]


def latest(db: Database, limit: int = 5) -> list[RelayDeadLetter]:
    """The most recent dead letters, newest first (by feed position)."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY position DESC LIMIT ?", (limit,))
    return [RelayDeadLetter(*row) for row in rows]
