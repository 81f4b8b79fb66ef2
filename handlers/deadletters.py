"""Dead letters and the host's checkpoint: what the local Functions host keeps between runs.

Event Grid writes an event it could not deliver after its last retry to a dead-letter blob; the
local host writes it here, one row per (function, event), with the attempts made and the last
error, so an operator can list it and re-drive it (``magictoolbox functions deadletters`` /
``redrive``). The checkpoint is the feed position below which every delivery has finished
(delivered or dead-lettered): a restart resumes there, so nothing is lost, and events past it
that were already delivered arrive again — at least once, as Event Grid promises.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from events.database import Database

DEADLETTERS = "functions_deadletters"
CHECKPOINTS = "functions_checkpoints"

_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {DEADLETTERS} (
        id TEXT PRIMARY KEY,
        function TEXT NOT NULL,
        event_id TEXT NOT NULL,
        position {{bigint}} NOT NULL,
        event_type TEXT NOT NULL,
        subject TEXT NOT NULL,
        event_json TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        dead_at {{ts}} NOT NULL,
        redriven_at {{ts}}
    )""",
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        name TEXT PRIMARY KEY,
        position {{bigint}} NOT NULL,
        updated_at {{ts}} NOT NULL
    )""",
)
_COLUMNS = (
    "id, function, event_id, position, event_type, subject, event_json, attempts, last_error, "
    "dead_at, redriven_at"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    function: str
    event_id: str
    position: int
    event_type: str
    subject: str
    event_json: str  # the CloudEvent as delivered
    attempts: int
    last_error: str
    dead_at: datetime
    redriven_at: datetime | None


class DeadLetterStore:
    """Dead letters and checkpoints in the read-model database (SQLite or PostgreSQL)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def setup(self) -> None:
        with Database(self.database_url) as db:
            for ddl in _DDL:
                db.execute(db.ddl(ddl))

    def add(
        self,
        *,
        function: str,
        event_id: str,
        position: int,
        event_type: str,
        subject: str,
        event_json: str,
        attempts: int,
        last_error: str,
    ) -> str:
        letter_id = str(uuid.uuid4())
        with Database(self.database_url) as db:
            db.execute(
                f"INSERT INTO {DEADLETTERS} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    letter_id,
                    function,
                    event_id,
                    position,
                    event_type,
                    subject,
                    event_json,
                    attempts,
                    last_error[:4000],
                    datetime.now(UTC),
                    None,
                ),
            )
        return letter_id

    def list(self, *, include_redriven: bool = False) -> list[DeadLetter]:
        where = "" if include_redriven else " WHERE redriven_at IS NULL"
        with Database(self.database_url) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM {DEADLETTERS}{where} ORDER BY dead_at, id")
        return [DeadLetter(*row) for row in rows]

    def get(self, letter_id: str) -> DeadLetter | None:
        with Database(self.database_url) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM {DEADLETTERS} WHERE id = ?", (letter_id,))
        return DeadLetter(*rows[0]) if rows else None

    def redriven(self, letter_id: str) -> None:
        with Database(self.database_url) as db:
            db.execute(
                f"UPDATE {DEADLETTERS} SET redriven_at = ? WHERE id = ?",
                (datetime.now(UTC), letter_id),
            )

    def failed_again(self, letter_id: str, error: str) -> None:
        with Database(self.database_url) as db:
            db.execute(
                f"UPDATE {DEADLETTERS} SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:4000], letter_id),
            )

    def checkpoint(self, name: str) -> int:
        with Database(self.database_url) as db:
            rows = db.execute(f"SELECT position FROM {CHECKPOINTS} WHERE name = ?", (name,))
        return rows[0][0] if rows else 0

    def save_checkpoint(self, name: str, position: int, db: Database | None = None) -> None:
        statement = (
            f"INSERT INTO {CHECKPOINTS} (name, position, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
            "updated_at = excluded.updated_at"
        )
        params = (name, position, datetime.now(UTC))
        if db is not None:
            db.execute(statement, params)
            return
        with Database(self.database_url) as own:
            own.execute(statement, params)
