"""Properties over random legal histories, made by the real command service:

* the status read model agrees with the decider's fold of every stream;
* rebuilding any projection gives exactly the rows incremental application gave, whatever the
  batch sizes were.
"""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import HealthCheck, given, settings, strategies as st

from events.database import Database
from events.envelope import execution_stream
from events.store import EventStore
from projections import status
from projections.projector import Projector
from projections.rebuild import rebuild
from projections.registry import ALL
from services.executions.commands import (
    Cancel,
    Command,
    Complete,
    Expire,
    Fail,
    RecordUpload,
    ReportProgress,
    Retry,
    Start,
    TimeOut,
)
from services.executions.decider import DomainError, ExecutionState, Status, execution
from services.executions.service import ExecutionService
from tests.events.factories import blob
from tests.projections.support import LATER, catch_up, snapshot, submit

NOW = datetime(2030, 1, 1, tzinfo=UTC)

progress = st.floats(0, 100, allow_nan=False).map(lambda p: ReportProgress(p, f"at {p:.0f}%"))
complete = st.one_of(
    st.builds(lambda ms: Complete(duration_ms=ms, result="aGVsbG8="), st.integers(0, 10**6)),
    st.builds(lambda ms: Complete(duration_ms=ms, output=blob("processed")), st.integers(0, 10**6)),
)
# A retryable failure may have its automatic retry scheduled (then it reads "retrying").
scheduled = st.none() | st.builds(lambda s: NOW + timedelta(seconds=s), st.integers(1, 3600))
allowed = st.none() | st.integers(1, 5)
fail = st.builds(
    lambda code, retryable, at, most: Fail(code, f"{code} happened", retryable, at, most),
    st.sampled_from(["bad_input", "upstream_down", "oom"]),
    st.booleans(),
    scheduled,
    allowed,
)
retry = st.builds(Retry, st.integers(1, 4), st.booleans())  # max_attempts, by_owner
start = st.just(Start("worker-1", NOW, LATER))
upload = st.builds(lambda: RecordUpload(blob=blob()))
timeout = st.builds(TimeOut, st.just(NOW + timedelta(days=30)), scheduled, allowed)
any_command = st.one_of(
    upload, start, progress, complete, fail, retry, timeout, st.just(Cancel()), st.just(Expire())
)
# Mostly commands that move the execution on from where it is, so that histories get far
# (retried attempts, timeouts, expiry); now and then any command: a cancel, or an illegal one.
LIKELY: dict[Status, st.SearchStrategy[Command]] = {
    Status.SUBMITTED: st.one_of(upload, start),
    Status.UPLOADED: start,
    Status.RETRYING: start,
    Status.PROCESSING: st.one_of(progress, complete, fail, fail, timeout),
    Status.FAILED: st.one_of(retry, retry, retry, st.just(Expire())),
    Status.COMPLETED: st.just(Expire()),
    Status.CANCELLED: st.just(Expire()),
    Status.EXPIRED: any_command,
}


def play(service: ExecutionService, data: st.DataObject) -> list[UUID]:
    """Submit 1-3 executions, then 3 to 30 commands, skipping the ones the decider refuses."""
    executions = data.draw(
        st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), min_size=1, max_size=3)
    )
    ids = [
        submit(service, tool=f"tool-{tool}", owner=f"owner-{tool}", with_input=with_input)
        for tool, with_input in executions
    ]
    for _ in range(data.draw(st.integers(3, 30))):
        execution_id = data.draw(st.sampled_from(ids))
        state = service.load(execution_id).state
        likely = data.draw(st.integers(0, 9)) > 0
        command = data.draw(LIKELY[state.status] if likely else any_command)
        with contextlib.suppress(DomainError):
            service.handle(execution_id, command)
    return ids


FINISHED_STATUSES = {"completed", "failed", "cancelled", "expired"}


def shown_status(state: ExecutionState) -> str:
    """The read side's status: ``retrying`` exactly when the decider's state is RETRYING, or
    FAILED with its automatic retry scheduled."""
    if state.status is Status.FAILED and state.next_attempt_at is not None:
        return Status.RETRYING.value
    return state.status.value


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_status_rows_agree_with_the_decider(
    data: st.DataObject,
    store: EventStore,
    service: ExecutionService,
    projector: Projector,
    db: Database,
) -> None:
    ids = play(service, data)
    catch_up(projector)
    for execution_id in ids:
        state = execution.fold(
            e.payload() for e in store.read_stream(execution_stream(execution_id))
        )
        row = status.get(db, str(execution_id))
        assert row is not None
        assert row.status == shown_status(state)
        assert (row.finished_at is not None) == (row.status in FINISHED_STATUSES)
        expected_next = state.next_attempt_at if state.status is not Status.EXPIRED else None
        assert row.next_attempt_at == expected_next
        assert row.max_attempts == state.max_attempts
        assert row.attempt == state.attempt
        assert row.percent == state.percent
        assert row.progress_message == state.progress_message
        assert row.input_blob == (state.upload.name if state.upload else None)
        assert row.output_blob == (state.output.name if state.output else None)
        assert row.result == state.result
        assert row.duration_ms == state.duration_ms
        error = state.error
        assert (row.error_code, row.error_message, row.error_retryable) == (
            (error.code, error.message, error.retryable) if error else (None, None, None)
        )
        assert (row.tool, row.owner, row.mode) == (state.tool, state.owner, state.mode)


@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_rebuilding_gives_the_rows_incremental_application_gave(
    data: st.DataObject,
    seed: int,
    store: EventStore,
    service: ExecutionService,
    db_url: str,
    db: Database,
) -> None:
    play(service, data)
    rng = random.Random(seed)
    incremental = Projector(store, db_url, batch_size=rng.randint(1, 7))
    incremental.setup()
    try:
        # Apply in random batch sizes, as a projector woken at random moments would.
        while True:
            incremental.batch_size = rng.randint(1, 7)
            if not incremental.run_once():
                break
        catch_up(incremental)
    finally:
        incremental.close()

    for name, projection in ALL.items():
        before = snapshot(db, projection)
        rebuild(store, db_url, name, batch_size=rng.randint(1, 50))
        assert snapshot(db, projection) == before, name
