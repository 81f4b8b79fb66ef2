"""The sweeper times out attempts past their deadline and expires finished executions."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events.catalog import Failed, Retried
from events.store import EventStore
from services.executions.commands import Complete, Retry, Start, Submit
from services.executions.decider import AttemptsExhausted, Status
from services.executions.service import ExecutionService
from services.executions.sweeper import sweep_retention, sweep_timeouts
from tests.events.factories import blob

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def started(service: ExecutionService, timeout: timedelta = timedelta(minutes=5)) -> uuid.UUID:
    eid = uuid.uuid4()
    service.handle(eid, Submit(eid, "pdf-merge", "pdf", "1", "async", "7"))
    service.handle(eid, Start("worker-1", T0, timeout))
    return eid


def test_an_attempt_past_its_deadline_fails_with_timeout_and_can_then_complete(
    store: EventStore,
) -> None:
    service = ExecutionService(store)
    eid = started(service)

    report = sweep_timeouts(service, [eid], now=T0 + timedelta(minutes=6))

    assert report.timed_out == [eid]
    state = service.load(eid).state
    assert state.status is Status.FAILED
    assert (state.error.code, state.error.retryable) == ("timeout", True)
    # The worker that was killed never comes back; a retry runs it to the end.
    service.handle(eid, Retry(max_attempts=3))
    service.handle(eid, Start("worker-2", T0 + timedelta(minutes=7), timedelta(minutes=5)))
    outcome = service.handle(eid, Complete(duration_ms=900, output=blob("processed")))
    assert outcome.state.status is Status.COMPLETED and outcome.state.attempt == 2
    types = [e.type.rsplit(".", 1)[1] for e in service.history(eid)]
    assert types == ["Submitted", "Processing", "Failed", "Retried", "Processing", "Completed"]


def test_an_attempt_within_its_deadline_is_left_alone(store: EventStore) -> None:
    service = ExecutionService(store)
    eid = started(service, timeout=timedelta(minutes=30))
    report = sweep_timeouts(service, [eid], now=T0 + timedelta(minutes=29))
    assert report.timed_out == [] and report.skipped == 1
    assert service.load(eid).state.status is Status.PROCESSING


def test_finished_or_unknown_candidates_are_skipped(store: EventStore) -> None:
    service = ExecutionService(store)
    done = started(service)
    service.handle(done, Complete(duration_ms=5, result="ok"))
    report = sweep_timeouts(service, [done, uuid.uuid4()], now=T0 + timedelta(days=1))
    assert report.timed_out == [] and report.skipped == 2
    assert service.load(done).state.status is Status.COMPLETED


def test_two_sweepers_at_once_time_an_attempt_out_once(store: EventStore) -> None:
    service = ExecutionService(store)
    eids = [started(service) for _ in range(5)]
    later = T0 + timedelta(hours=1)
    barrier = threading.Barrier(3)
    reports = []

    def sweep() -> None:
        barrier.wait()
        reports.append(sweep_timeouts(service, eids, now=later))

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(e for r in reports for e in r.timed_out) == sorted(eids)
    for eid in eids:
        failures = [e for e in service.history(eid) if e.type == Failed.event_type()]
        assert len(failures) == 1


def test_finished_executions_expire_after_their_retention_and_lose_their_files(
    store: EventStore,
) -> None:
    service = ExecutionService(store)
    old, recent, running = started(service), started(service), started(service)
    output = blob("processed")
    service.handle(old, Complete(duration_ms=5, output=output))
    service.handle(recent, Complete(duration_ms=5, output=blob("processed")))
    removed_for = []

    def remove(state):
        removed_for.append(state.execution_id)
        return [state.output]

    now = T0 + timedelta(days=31)
    candidates = [(old, T0), (recent, now - timedelta(days=2)), (running, T0)]
    report = sweep_retention(service, candidates, now, remove_blobs=remove)

    assert report.expired == [old] and report.skipped == 2
    assert removed_for == [old]
    state = service.load(old).state
    assert state.status is Status.EXPIRED and state.ended_as is Status.COMPLETED
    assert state.blobs_removed == (output,)
    assert service.load(recent).state.status is Status.COMPLETED
    assert service.load(running).state.status is Status.PROCESSING
    # Expired is final: a second sweep finds nothing to do.
    assert sweep_retention(service, candidates, now, remove_blobs=remove).expired == []


def test_retry_after_timeout_respects_the_attempt_limit(store: EventStore) -> None:
    service = ExecutionService(store)
    eid = started(service)
    now = T0
    for attempt in range(1, 4):
        now += timedelta(minutes=10)
        assert sweep_timeouts(service, [eid], now=now).timed_out == [eid]
        if attempt < 3:
            service.handle(eid, Retry(max_attempts=3))
            service.handle(eid, Start(f"worker-{attempt + 1}", now, timedelta(minutes=5)))
    retried = [e for e in service.history(eid) if e.type == Retried.event_type()]
    assert len(retried) == 2
    loaded = service.load(eid)
    state, version = loaded.state, loaded.version
    assert state.status is Status.FAILED and state.attempt == 3
    with pytest.raises(AttemptsExhausted):
        service.handle(eid, Retry(max_attempts=3))
    assert service.load(eid).version == version  # nothing appended
