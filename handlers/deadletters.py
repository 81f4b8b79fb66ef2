"""Dead letters: deliveries the local Functions host gave up on after their last attempt.

Event Grid writes such an event to a dead-letter blob; the local host writes it here, one row per
(function, event) with the attempts and the last error, so an operator can list it and deliver it
again (``magictoolbox functions deadletters`` / ``redrive``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import azure.functions as func
import orjson

from events import checkpoints
from events.database import Database
from handlers.bindings import read_bindings

DEADLETTERS = "functions_deadletters"
# Where the host kept its checkpoint before every feed reader shared events.checkpoints.
OLD_CHECKPOINTS = "functions_checkpoints"

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
            checkpoints.create_table(db, [])
            _carry_over_old_checkpoints(db)

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


def _carry_over_old_checkpoints(db: Database) -> None:
    """A deployment that ran before the shared checkpoint table keeps its host's position."""
    if db.dialect == "sqlite":
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OLD_CHECKPOINTS,)
        )
    else:
        found = db.execute("SELECT to_regclass(?)", (OLD_CHECKPOINTS,))
        found = [row for row in found if row[0] is not None]
    if found:
        db.execute(
            f"INSERT INTO {checkpoints.TABLE} (name, position, updated_at) "
            f"SELECT name, position, updated_at FROM {OLD_CHECKPOINTS} WHERE true "
            "ON CONFLICT (name) DO NOTHING"
        )


def redrive(
    app: func.FunctionApp, deadletters: DeadLetterStore, letter_id: str, topic: str
) -> str | None:
    """Deliver a dead letter once more, to its function. None on success, else the error."""
    letter = deadletters.get(letter_id)
    if letter is None:
        raise KeyError(f"there is no dead letter {letter_id}")
    subscriptions, _ = read_bindings(app)
    subscription = next((s for s in subscriptions if s.name == letter.function), None)
    if subscription is None:
        raise KeyError(f"the app has no function {letter.function!r} any more")
    doc = orjson.loads(letter.event_json)
    event = func.EventGridEvent(
        id=doc["id"],
        data=doc.get("data") or {},
        topic=topic,
        subject=doc.get("subject", ""),
        event_type=doc["type"],
        event_time=datetime.fromisoformat(doc["time"]) if doc.get("time") else None,
        data_version=str(doc.get("dataschemaversion", "1")),
    )
    try:
        subscription.function(**{subscription.arg_name: event})
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        deadletters.failed_again(letter_id, error)
        return error
    deadletters.redriven(letter_id)
    return None
