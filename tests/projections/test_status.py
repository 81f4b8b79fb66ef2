"""The status read model follows an execution through its lifecycle, as a polling UI sees it."""

from __future__ import annotations

from datetime import UTC, datetime

from events.database import Database
from events.store import EventStore
from projections import status
from projections.projector import Projector
from services.executions.commands import (
    Cancel,
    Complete,
    Expire,
    Fail,
    RecordUpload,
    ReportProgress,
    Retry,
    Start,
)
from services.executions.service import ExecutionService
from tests.events.factories import blob
from tests.projections.support import LATER, catch_up, submit


def row(projector: Projector, db: Database, execution_id) -> status.ExecutionStatus:
    catch_up(projector)
    found = status.get(db, execution_id)
    assert found is not None
    return found


def test_a_run_is_followed_from_submitted_to_completed(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service, tool="image-rotate", owner="7")
    r = row(projector, db, execution_id)
    assert (r.status, r.tool, r.category, r.owner, r.mode) == (
        "submitted",
        "image-rotate",
        "image",
        "7",
        "async",
    )
    assert r.input_filename == "photo.png"
    assert (r.attempt, r.percent, r.input_blob, r.started_at, r.finished_at) == (
        0,
        0,
        None,
        None,
        None,
    )
    assert r.stream_version == 0

    upload = blob()
    service.handle(execution_id, RecordUpload(blob=upload))
    r = row(projector, db, execution_id)
    assert (r.status, r.input_blob) == ("uploaded", upload.name)

    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    r = row(projector, db, execution_id)
    assert (r.status, r.attempt, r.percent) == ("processing", 1, 0)
    assert r.started_at is not None and r.started_at >= r.submitted_at

    service.handle(execution_id, ReportProgress(55.5, "rotating"))
    r = row(projector, db, execution_id)
    assert (r.status, r.percent, r.progress_message) == ("processing", 55.5, "rotating")

    output = blob("processed")
    service.handle(execution_id, Complete(duration_ms=1234, output=output))
    r = row(projector, db, execution_id)
    assert (r.status, r.percent, r.output_blob, r.result, r.duration_ms) == (
        "completed",
        100,
        output.name,
        None,
        1234,
    )
    assert r.finished_at is not None and r.finished_at >= r.started_at
    assert r.error_code is None
    assert r.stream_version == 4

    service.handle(execution_id, Expire())
    r = row(projector, db, execution_id)
    assert r.status == "expired"
    assert r.output_blob == output.name  # what it ended with stays visible
    assert r.finished_at is not None


def test_a_failed_attempt_shows_its_error_until_the_retry_starts(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service, with_input=False)
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    service.handle(execution_id, Fail("upstream_down", "the converter did not answer", True))
    r = row(projector, db, execution_id)
    assert (r.status, r.error_code, r.error_message, r.error_retryable) == (
        "failed",
        "upstream_down",
        "the converter did not answer",
        True,
    )
    assert r.finished_at is not None

    service.handle(execution_id, Retry())
    r = row(projector, db, execution_id)
    assert (r.status, r.error_code, r.finished_at) == ("retrying", "upstream_down", None)

    service.handle(execution_id, Start("worker-2", datetime.now(UTC), LATER))
    r = row(projector, db, execution_id)
    assert (r.status, r.attempt, r.error_code, r.error_retryable) == ("processing", 2, None, None)

    service.handle(execution_id, Complete(duration_ms=5, result="aGVsbG8="))
    r = row(projector, db, execution_id)
    assert (r.status, r.result, r.output_blob) == ("completed", "aGVsbG8=", None)


def test_a_cancelled_run_is_finished(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service)
    service.handle(execution_id, Cancel("changed my mind"))
    r = row(projector, db, execution_id)
    assert r.status == "cancelled"
    assert r.finished_at is not None


def test_an_unknown_execution_has_no_row(projector: Projector, db: Database) -> None:
    catch_up(projector)
    assert status.get(db, "00000000-0000-0000-0000-000000000000") is None


def test_streams_that_are_not_executions_are_ignored(
    store: EventStore, service: ExecutionService, projector: Projector, db: Database
) -> None:
    from tests.events.factories import progress

    store.append("audit-1", progress(3))
    execution_id = submit(service)
    assert catch_up(projector) > 0
    assert status.get(db, execution_id) is not None
    assert db.execute("SELECT count(*) FROM proj_execution_status")[0][0] == 1
