"""Tool statistics: executions per tool by current status, and how long completed runs took.

A failure with its automatic retry still to come counts as ``retrying``, not ``failed``: ``failed``
counts only runs that ended so.

Counts move as executions move between statuses, so the projection keeps each execution's
current status and tool in a table of its own. Percentiles are computed in Python from the stored
durations, which is fine while a tool has thousands of runs, not millions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from events.database import Database
from events.envelope import RecordedEvent
from projections.projection import (
    LIVE,
    STATUS_AFTER,
    Table,
    execution_events,
    load_rows,
    status_after,
)

EXECUTIONS = "tool_stats_executions"
COUNTS = "tool_stats_counts"
DURATIONS = "tool_stats_durations"


@dataclass(frozen=True, slots=True)
class ToolStats:
    tool: str
    counts: dict[str, int] = field(default_factory=dict)  # by current status
    completed_runs: int = 0  # completed executions with a duration (expired ones included)
    p50_ms: int | None = None
    p95_ms: int | None = None

    @property
    def executions(self) -> int:
        return sum(self.counts.values())


class ToolStatsProjection:
    name = "tool_stats"
    types = None
    tables = (
        Table(
            EXECUTIONS,
            "execution_id TEXT PRIMARY KEY, tool TEXT NOT NULL, status TEXT NOT NULL",
        ),
        Table(
            COUNTS,
            "tool TEXT NOT NULL, status TEXT NOT NULL, n {bigint} NOT NULL, "
            "PRIMARY KEY (tool, status)",
        ),
        Table(
            DURATIONS,
            "execution_id TEXT PRIMARY KEY, tool TEXT NOT NULL, duration_ms {bigint} NOT NULL",
        ),
    )

    def apply(self, db: Database, events: Sequence[RecordedEvent], prefix: str) -> None:
        batch = [e for e in execution_events(events) if e.kind in STATUS_AFTER]
        if not batch:
            return
        ids = list(dict.fromkeys(e.execution_id for e in batch))
        columns = ("execution_id", "tool", "status")
        rows = load_rows(db, prefix + EXECUTIONS, columns, ids)
        changed: dict[str, list[Any]] = {}
        delta: Counter[tuple[str, str]] = Counter()
        durations = []
        for e in batch:
            row = rows.get(e.execution_id)
            status = status_after(e.kind, e.data)  # a failure with a retry to come: retrying
            if e.kind == "Submitted":
                if row is not None:
                    delta[row[1], row[2]] -= 1  # a second Submitted cannot happen; be exact anyway
                row = rows[e.execution_id] = [e.execution_id, e.data["tool"], status]
            elif row is None:
                continue
            else:
                delta[row[1], row[2]] -= 1
                row[2] = status
            delta[row[1], status] += 1
            if e.kind == "Completed":
                durations.append((e.execution_id, row[1], e.data["duration_ms"]))
            changed[e.execution_id] = row
        db.upsert(prefix + EXECUTIONS, columns, list(changed.values()))
        counts = prefix + COUNTS
        db.executemany(
            f"INSERT INTO {counts} (tool, status, n) VALUES (?, ?, ?) "
            f"ON CONFLICT (tool, status) DO UPDATE SET n = {counts}.n + excluded.n",
            [(tool, status, n) for (tool, status), n in delta.items() if n],
        )
        # Rows at zero are deleted so that the table does not depend on how events were batched.
        db.execute(f"DELETE FROM {counts} WHERE n = 0")
        db.upsert(prefix + DURATIONS, ("execution_id", "tool", "duration_ms"), durations)


def percentile(sorted_values: Sequence[int], percent: int) -> int | None:
    """The nearest-rank percentile of already sorted values (None for none)."""
    if not sorted_values:
        return None
    rank = -(-percent * len(sorted_values) // 100)  # ceil(percent / 100 * n) in integers
    return sorted_values[max(rank, 1) - 1]


def tool_stats(db: Database, prefix: str = LIVE) -> dict[str, ToolStats]:
    """Every tool's counts by status and p50/p95 duration of its completed executions."""
    counts: dict[str, dict[str, int]] = {}
    for tool, status, n in db.execute(f"SELECT tool, status, n FROM {prefix}{COUNTS}"):
        counts.setdefault(tool, {})[status] = n
    durations: dict[str, list[int]] = {}
    for tool, ms in db.execute(
        f"SELECT tool, duration_ms FROM {prefix}{DURATIONS} ORDER BY tool, duration_ms"
    ):
        durations.setdefault(tool, []).append(ms)
    result = {}
    for tool in sorted(counts.keys() | durations.keys()):
        values = durations.get(tool, [])
        result[tool] = ToolStats(
            tool=tool,
            counts=counts.get(tool, {}),
            completed_runs=len(values),
            p50_ms=percentile(values, 50),
            p95_ms=percentile(values, 95),
        )
    return result


PROJECTION = ToolStatsProjection()
