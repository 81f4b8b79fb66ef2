"""The status read model: one row per execution with what the UI and API poll.

Each event's status comes from the catalog (as the decider's does), except that a failure with
its next attempt scheduled reads ``retrying``: it is not finished, and ``due_retries`` finds it
when its time comes. The fold flattens the rest of the data into columns. Tests compare the rows
with the decider's states on random histories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events.database import Database
from events.envelope import RecordedEvent
from projections.projection import (
    LIVE,
    RETRYING,
    STATUS_AFTER,
    Index,
    Table,
    execution_events,
    load_rows,
    status_after,
)

TABLE = "execution_status"
COLUMNS = (
    "execution_id",
    "tool",
    "category",
    "owner",
    "mode",
    "status",
    "percent",
    "progress_message",
    "attempt",
    "input_filename",
    "input_blob",
    "output_blob",
    "result",
    "duration_ms",
    "error_code",
    "error_message",
    "error_retryable",
    "submitted_at",
    "started_at",
    "finished_at",
    "updated_at",
    "stream_version",
    "replay_of",
    "next_attempt_at",
    "max_attempts",
)
(
    EXECUTION_ID,
    TOOL,
    CATEGORY,
    OWNER,
    MODE,
    STATUS,
    PERCENT,
    PROGRESS_MESSAGE,
    ATTEMPT,
    INPUT_FILENAME,
    INPUT_BLOB,
    OUTPUT_BLOB,
    RESULT,
    DURATION_MS,
    ERROR_CODE,
    ERROR_MESSAGE,
    ERROR_RETRYABLE,
    SUBMITTED_AT,
    STARTED_AT,
    FINISHED_AT,
    UPDATED_AT,
    STREAM_VERSION,
    REPLAY_OF,
    NEXT_ATTEMPT_AT,
    MAX_ATTEMPTS,
) = range(len(COLUMNS))


@dataclass(frozen=True, slots=True)
class ExecutionStatus:
    """One row of the status read model."""

    execution_id: str
    tool: str
    category: str
    owner: str
    mode: str
    status: str  # submitted, uploaded, processing, retrying, completed, failed, cancelled, expired
    percent: float
    progress_message: str
    attempt: int
    input_filename: str | None
    input_blob: str | None  # the uploaded blob's name
    output_blob: str | None  # the processed blob's name
    result: str | None  # an inline result
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    error_retryable: bool | None
    submitted_at: datetime
    started_at: datetime | None  # the last Processing
    finished_at: datetime | None  # Completed, a final Failed, Cancelled (or Expired)
    updated_at: datetime
    stream_version: int
    replay_of: str | None
    # When the automatic retry of the last failure is due: set while the status is retrying
    # after a Failed, None once Retried (waiting for a worker) and in every other status.
    next_attempt_at: datetime | None = None
    max_attempts: int | None = None  # the attempts the tool allows, as the last Failed said


class StatusProjection:
    name = "status"
    types = None
    tables = (
        Table(
            TABLE,
            """
            execution_id TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            category TEXT NOT NULL,
            owner TEXT NOT NULL,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            percent {float} NOT NULL,
            progress_message TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            input_filename TEXT,
            input_blob TEXT,
            output_blob TEXT,
            result TEXT,
            duration_ms {bigint},
            error_code TEXT,
            error_message TEXT,
            error_retryable {bool},
            submitted_at {ts} NOT NULL,
            started_at {ts},
            finished_at {ts},
            updated_at {ts} NOT NULL,
            stream_version INTEGER NOT NULL,
            replay_of TEXT,
            next_attempt_at {ts},
            max_attempts INTEGER
            """,
            # The sweeper asks for executions by status (processing; finished, by age) and for
            # the retries that are due.
            (
                Index("status_by_status", "status, updated_at"),
                Index("status_retries_due", "status, next_attempt_at"),
            ),
        ),
    )

    def apply(self, db: Database, events: Sequence[RecordedEvent], prefix: str) -> None:
        batch = list(execution_events(events))
        if not batch:
            return
        table = prefix + TABLE
        ids = list(dict.fromkeys(e.execution_id for e in batch))
        rows = load_rows(db, table, COLUMNS, ids)
        changed: dict[str, list[Any]] = {}
        for e in batch:
            row = rows.get(e.execution_id)
            if row is None:
                if e.kind != "Submitted":
                    continue  # not an execution this model knows: its stream has no Submitted
                row = rows[e.execution_id] = [None] * len(COLUMNS)
            fold(row, e.kind, e.data, e.event)
            changed[e.execution_id] = row
        db.upsert(table, COLUMNS, list(changed.values()))
        # An execution its owner deleted leaves the owner's reads (its stream stays, for the audit).
        deleted = [
            (e.execution_id,) for e in batch if e.kind == "Expired" and e.data.get("deleted")
        ]
        if deleted:
            db.executemany(f"DELETE FROM {table} WHERE execution_id = ?", deleted)


def fold(row: list[Any], kind: str, data: dict[str, Any], event: RecordedEvent) -> None:
    """Apply one event to a row in place: its status, and its data flattened to columns."""
    if kind not in KNOWN:
        return  # a type this model does not read: not even updated_at moves
    at = event.time
    if kind in STATUS_AFTER:
        row[STATUS] = status_after(kind, data)
    if kind == "Submitted":
        row[EXECUTION_ID] = data["execution_id"]
        row[TOOL] = data["tool"]
        row[CATEGORY] = data["category"]
        row[OWNER] = data["owner"]
        row[MODE] = data["mode"]
        row[PERCENT] = 0.0
        row[PROGRESS_MESSAGE] = ""
        row[ATTEMPT] = 0
        row[INPUT_FILENAME] = (data.get("input") or {}).get("filename")
        row[REPLAY_OF] = data.get("replay_of")
        row[SUBMITTED_AT] = at
    elif kind == "Uploaded":
        row[INPUT_BLOB] = data["blob"]["name"]
    elif kind == "Processing":
        row[ATTEMPT] = data["attempt"]
        row[PERCENT] = 0.0
        row[PROGRESS_MESSAGE] = ""
        row[ERROR_CODE] = row[ERROR_MESSAGE] = row[ERROR_RETRYABLE] = None
        row[STARTED_AT] = at
        row[NEXT_ATTEMPT_AT] = None
    elif kind == "Progress":
        row[PERCENT] = float(data["percent"])
        row[PROGRESS_MESSAGE] = data.get("message", "")
    elif kind == "Completed":
        row[PERCENT] = 100.0
        row[OUTPUT_BLOB] = (data.get("output") or {}).get("name")
        row[RESULT] = data.get("result")
        row[DURATION_MS] = data["duration_ms"]
        row[FINISHED_AT] = at
    elif kind == "Failed":
        row[ERROR_CODE] = data["code"]
        row[ERROR_MESSAGE] = data["message"]
        row[ERROR_RETRYABLE] = bool(data["retryable"])
        # As the decider keeps them: both from the event, so a final failure clears the time.
        row[NEXT_ATTEMPT_AT] = _time(data.get("next_attempt_at"))
        row[MAX_ATTEMPTS] = data.get("max_attempts")
        # A failure with another attempt coming has not finished the run.
        row[FINISHED_AT] = None if row[STATUS] == RETRYING else at
    elif kind == "Cancelled":
        row[FINISHED_AT] = at
        row[NEXT_ATTEMPT_AT] = None
    elif kind == "Retried":
        row[FINISHED_AT] = None  # waiting for a worker again: not finished any more
        row[NEXT_ATTEMPT_AT] = None
    elif kind == "Expired":
        # It ended when it ended, or now if a retry was still pending (which it drops).
        row[FINISHED_AT] = row[FINISHED_AT] or at
        row[NEXT_ATTEMPT_AT] = None
    row[UPDATED_AT] = at
    row[STREAM_VERSION] = event.version


KNOWN = frozenset({*STATUS_AFTER, "Progress"})


def _time(value: str | datetime | None) -> datetime | None:
    """A time from an event's JSON data (ISO text) as an aware datetime (UTC when it says none)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def get(db: Database, execution_id: str, prefix: str = LIVE) -> ExecutionStatus | None:
    """The status row of one execution, or None when the projection has not seen it."""
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {prefix}{TABLE} WHERE execution_id = ?",
        (str(execution_id),),
    )
    return ExecutionStatus(*rows[0]) if rows else None


def get_many(
    db: Database, execution_ids: Sequence[str], prefix: str = LIVE
) -> list[ExecutionStatus]:
    """The rows of those executions the projection has seen, in no particular order."""
    rows = db.select_in(
        f"SELECT {', '.join(COLUMNS)} FROM {prefix}{TABLE} WHERE {{in_}}",
        "execution_id",
        [str(i) for i in execution_ids],
    )
    return [ExecutionStatus(*row) for row in rows]


def from_events(events: Sequence[RecordedEvent]) -> ExecutionStatus | None:
    """The row that applying one execution's stream gives, without the table: what a reader
    uses for an execution the projector has not reached yet (read-your-writes)."""
    row: list[Any] | None = None
    for e in execution_events(events):
        if row is None:
            if e.kind != "Submitted":
                continue
            row = [None] * len(COLUMNS)
        fold(row, e.kind, e.data, e.event)
    return ExecutionStatus(*row) if row is not None else None


def in_status(
    db: Database, statuses: Sequence[str], limit: int = 10_000, prefix: str = LIVE
) -> list[ExecutionStatus]:
    """Rows in any of ``statuses``, least recently updated first (the sweeper's candidates)."""
    marks = ", ".join("?" * len(statuses))
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {prefix}{TABLE} WHERE status IN ({marks}) "
        "ORDER BY updated_at LIMIT ?",
        (*statuses, limit),
    )
    return [ExecutionStatus(*r) for r in rows]


def due_retries(
    db: Database, now: datetime, limit: int = 1000, prefix: str = LIVE
) -> list[ExecutionStatus]:
    """Rows waiting for an automatic retry that is due by ``now``, the longest-due first (the
    sweeper's candidates: it sends ``Retry``, which the decider refuses if they are stale)."""
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {prefix}{TABLE} "
        "WHERE status = ? AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, execution_id LIMIT ?",
        (RETRYING, now, limit),
    )
    return [ExecutionStatus(*r) for r in rows]


PROJECTION = StatusProjection()
