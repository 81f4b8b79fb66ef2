"""The status read model follows an execution through its lifecycle, as a polling UI sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.database import Database
from events.store import EventStore
from projections import status
from projections.projection import live_columns
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


# -- a pending retry is not finished ---------------------------------------------------------------

DUE = datetime(2030, 1, 1, 12, 0, 25, tzinfo=UTC)


def test_a_failure_with_its_retry_scheduled_is_retrying_not_finished(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service, with_input=False)
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    service.handle(
        execution_id,
        Fail("timeout", "too slow", True, next_attempt_at=DUE, max_attempts=3),
    )
    r = row(projector, db, execution_id)
    assert (r.status, r.finished_at, r.next_attempt_at, r.max_attempts) == (
        "retrying",
        None,
        DUE,
        3,
    )
    assert (r.error_code, r.error_retryable, r.attempt) == ("timeout", True, 1)
    assert status.from_events(service.load(execution_id).stream) == r  # read-your-writes agrees

    service.handle(execution_id, Retry())  # the sweeper re-queues it: waiting for a worker
    r = row(projector, db, execution_id)
    assert (r.status, r.finished_at, r.next_attempt_at, r.max_attempts) == (
        "retrying",
        None,
        None,
        3,
    )

    service.handle(execution_id, Start("worker-2", datetime.now(UTC), LATER))
    r = row(projector, db, execution_id)
    assert (r.status, r.attempt, r.next_attempt_at, r.finished_at) == ("processing", 2, None, None)

    service.handle(execution_id, Fail("bad_input", "not a PNG", False))  # final: nothing comes
    r = row(projector, db, execution_id)
    assert (r.status, r.next_attempt_at, r.max_attempts) == ("failed", None, None)
    assert r.finished_at is not None


def test_a_pending_retry_that_expires_is_finished_then(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service, with_input=False)
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    service.handle(execution_id, Fail("timeout", "too slow", True, next_attempt_at=DUE))
    service.handle(execution_id, Expire())
    r = row(projector, db, execution_id)
    assert (r.status, r.next_attempt_at) == ("expired", None)
    assert r.finished_at is not None


def test_due_retries_are_the_pending_ones_whose_time_has_come_longest_due_first(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    def failed(at: datetime | None) -> str:
        execution_id = submit(service, with_input=False)
        service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
        service.handle(execution_id, Fail("timeout", "too slow", True, next_attempt_at=at))
        return str(execution_id)

    later = failed(DUE + timedelta(seconds=10))
    sooner = failed(DUE - timedelta(seconds=10))
    exactly = failed(DUE)
    failed(DUE + timedelta(hours=1))  # not yet
    failed(None)  # retryable, but nothing scheduled: the old sweep's business
    requeued = failed(DUE - timedelta(hours=1))
    service.handle(requeued, Retry())  # already re-queued: no longer due
    catch_up(projector)

    due = status.due_retries(db, DUE + timedelta(seconds=10))
    assert [r.execution_id for r in due] == [sooner, exactly, later]
    assert [r.execution_id for r in status.due_retries(db, DUE, limit=1)] == [sooner]
    assert status.due_retries(db, DUE - timedelta(minutes=1)) == []


OLD_STATUS_TABLE = """
    execution_id TEXT PRIMARY KEY, tool TEXT NOT NULL, category TEXT NOT NULL,
    owner TEXT NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL, percent {float} NOT NULL,
    progress_message TEXT NOT NULL, attempt INTEGER NOT NULL, input_filename TEXT,
    input_blob TEXT, output_blob TEXT, result TEXT, duration_ms {bigint}, error_code TEXT,
    error_message TEXT, error_retryable {bool}, submitted_at {ts} NOT NULL, started_at {ts},
    finished_at {ts}, updated_at {ts} NOT NULL, stream_version INTEGER NOT NULL, replay_of TEXT
"""


def test_setup_adds_the_new_columns_to_a_table_from_before_them(
    store: EventStore, service: ExecutionService, db_url: str, db: Database
) -> None:
    table = f"proj_{status.TABLE}"
    db.execute(db.ddl(f"CREATE TABLE {table} ({OLD_STATUS_TABLE})"))
    before = submit(service, with_input=False)
    # An old deployment's row, written before the columns existed.
    db.execute(
        f"INSERT INTO {table} (execution_id, tool, category, owner, mode, status, percent, "
        "progress_message, attempt, submitted_at, updated_at, stream_version) "
        "VALUES (?, 'image-rotate', 'image', '7', 'async', 'submitted', 0, '', 0, ?, ?, 0)",
        (str(before), datetime.now(UTC), datetime.now(UTC)),
    )
    assert "next_attempt_at" not in live_columns(db, table)

    projector = Projector(store, db_url, projections=[status.PROJECTION])
    try:
        projector.setup()
        projector.setup()  # the next start finds them there: nothing to add
        assert {"next_attempt_at", "max_attempts"} <= set(live_columns(db, table))
        assert status.get(db, str(before)).next_attempt_at is None  # old rows read NULL

        service.handle(before, Start("worker-1", datetime.now(UTC), LATER))
        service.handle(
            before, Fail("timeout", "too slow", True, next_attempt_at=DUE, max_attempts=2)
        )
        r = row(projector, db, before)
        assert (r.status, r.next_attempt_at, r.max_attempts) == ("retrying", DUE, 2)
        assert [x.execution_id for x in status.due_retries(db, DUE)] == [str(before)]
    finally:
        projector.close()
