"""Helpers for the projection tests: executions built through the real command service, and
whole-table snapshots to compare read models."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from events.catalog import DeclaredInput
from events.database import Database
from events.store import EventStore
from projections.projection import LIVE, Projection
from projections.projector import Projector
from services.executions.commands import Complete, Fail, RecordUpload, Start, Submit
from services.executions.service import ExecutionService
from tests.events.factories import blob

LATER = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]


def submit(
    service: ExecutionService,
    *,
    tool: str = "image-rotate",
    owner: str = "7",
    with_input: bool = True,
    execution_id: UUID | None = None,
) -> UUID:
    execution_id = execution_id or uuid4()
    service.handle(
        execution_id,
        Submit(
            execution_id=execution_id,
            tool=tool,
            category="image",
            tool_version="1",
            mode="async",
            owner=owner,
            params={"angle": 90},
            input=DeclaredInput(filename="photo.png", size=9, content_type="image/png")
            if with_input
            else None,
        ),
    )
    return execution_id


def complete_run(
    service: ExecutionService,
    *,
    tool: str = "image-rotate",
    owner: str = "7",
    duration_ms: int = 42,
) -> UUID:
    """Submitted → Uploaded → Processing → Completed."""
    execution_id = submit(service, tool=tool, owner=owner)
    service.handle(execution_id, RecordUpload(blob=blob()))
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    service.handle(execution_id, Complete(duration_ms=duration_ms, output=blob("processed")))
    return execution_id


def failed_run(service: ExecutionService, *, tool: str = "image-rotate", owner: str = "7") -> UUID:
    execution_id = submit(service, tool=tool, owner=owner, with_input=False)
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    service.handle(execution_id, Fail("bad_image", "not a PNG", retryable=False))
    return execution_id


def wait_readable(store: EventStore) -> None:
    """Wait until the feed shows every event appended so far. On PostgreSQL it shows an event
    only once no older transaction runs anywhere on the server (another test, say)."""
    newest = store.feed_status().newest_position
    deadline = time.monotonic() + 30
    while (seen := store.head_position()) < newest and time.monotonic() < deadline:
        store.wait_for(seen, 0.5)


def catch_up(projector: Projector) -> int:
    """Apply everything appended so far; the number of events applied."""
    wait_readable(projector.store)
    total = 0
    while applied := projector.run_once():
        total += applied
    return total


def snapshot(db: Database, projection: Projection, prefix: str = LIVE) -> dict[str, list[Any]]:
    """Every row of every table of a projection, sorted: equal snapshots mean equal read models."""
    return {
        table.name: sorted(db.execute(f"SELECT * FROM {prefix}{table.name}"), key=repr)
        for table in projection.tables
    }


def head(store: EventStore) -> int:
    return store.head_position()
