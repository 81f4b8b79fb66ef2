"""The history read model: each owner's executions by submission time, for "my last runs".

Two indexes make "the last 10 runs of this owner (of this tool)" an index scan that stops after
10 rows, however many runs the owner has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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

TABLE = "execution_history"
COLUMNS = ("execution_id", "owner", "tool", "submitted_at", "status", "finished_at")
EXECUTION_ID, OWNER, TOOL, SUBMITTED_AT, STATUS, FINISHED_AT = range(len(COLUMNS))

_FINISHING = frozenset({"Completed", "Failed", "Cancelled"})


@dataclass(frozen=True, slots=True)
class Run:
    execution_id: str
    owner: str
    tool: str
    submitted_at: datetime
    status: str
    finished_at: datetime | None


class HistoryProjection:
    name = "history"
    types = None
    tables = (
        Table(
            TABLE,
            """
            execution_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            tool TEXT NOT NULL,
            submitted_at {ts} NOT NULL,
            status TEXT NOT NULL,
            finished_at {ts}
            """,
            indexes=(
                Index("history_owner", "owner, submitted_at DESC, execution_id"),
                Index("history_owner_tool", "owner, tool, submitted_at DESC, execution_id"),
            ),
        ),
    )

    def apply(self, db: Database, events: Sequence[RecordedEvent], prefix: str) -> None:
        batch = [e for e in execution_events(events) if e.kind in STATUS_AFTER]
        if not batch:
            return
        table = prefix + TABLE
        rows = load_rows(db, table, COLUMNS, list(dict.fromkeys(e.execution_id for e in batch)))
        changed: dict[str, list[Any]] = {}
        for e in batch:
            row = rows.get(e.execution_id)
            if e.kind == "Submitted":
                row = rows[e.execution_id] = [
                    e.execution_id,
                    e.data["owner"],
                    e.data["tool"],
                    e.event.time,
                    "submitted",
                    None,
                ]
            elif row is None:
                continue  # no Submitted: not an execution
            row[STATUS] = status_after(e.kind, e.data)
            if row[STATUS] == RETRYING:  # after Retried, or a failure with a retry to come
                row[FINISHED_AT] = None
            elif e.kind in _FINISHING or (e.kind == "Expired" and row[FINISHED_AT] is None):
                row[FINISHED_AT] = e.event.time
            changed[e.execution_id] = row
        db.upsert(table, COLUMNS, list(changed.values()))
        # An execution its owner deleted leaves the owner's reads (its stream stays, for the audit).
        deleted = [
            (e.execution_id,) for e in batch if e.kind == "Expired" and e.data.get("deleted")
        ]
        if deleted:
            db.executemany(f"DELETE FROM {table} WHERE execution_id = ?", deleted)


def recent(
    db: Database,
    owner: str,
    tool: str | None = None,
    limit: int = 10,
    prefix: str = LIVE,
    *,
    status: str | None = None,
    before: tuple[datetime, str] | None = None,
) -> list[Run]:
    """The owner's newest runs (of ``tool``, in ``status`` when given), newest first.

    ``before`` is the (submitted_at, execution_id) of the last run of a previous page: the
    page after it, stable however many runs are submitted meanwhile.
    """
    where, params = ["owner = ?"], [owner]
    if tool is not None:
        where.append("tool = ?")
        params.append(tool)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if before is not None:
        where.append("(submitted_at < ? OR (submitted_at = ? AND execution_id > ?))")
        params += [before[0], before[0], before[1]]
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {prefix}{TABLE} WHERE {' AND '.join(where)} "
        "ORDER BY submitted_at DESC, execution_id LIMIT ?",
        (*params, limit),
    )
    return [Run(*row) for row in rows]


PROJECTION = HistoryProjection()
