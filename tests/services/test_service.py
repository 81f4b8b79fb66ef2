"""ExecutionService on both store backends: what it writes, how it time-travels, how it races.

The store is real (SQLite or PostgreSQL, from the ``store`` fixture). Two stand-ins are named as
such: ``FakeClock`` (the service takes its clock as a parameter) and the conflict-injecting store
wrappers, which let another writer in at the exact moment a race needs.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events.catalog import Cancelled, Completed, Processing, Progress, Submitted
from events.envelope import execution_stream, new_event
from events.errors import WrongExpectedVersion
from events.store import EventStore
from services.executions.commands import (
    Cancel,
    Complete,
    ReportProgress,
    Start,
    Submit,
)
from services.executions.decider import (
    ExecutionNotFound,
    IllegalTransition,
    Status,
)
from services.executions.service import (
    DEFAULT_TIMEOUT,
    ConcurrencyConflict,
    ExecutionService,
    Trace,
)
from tests.events.factories import blob

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class FakeClock:
    """A fake clock: each reading is one minute after the last, from T0."""

    def __init__(self) -> None:
        self.now = T0 - timedelta(minutes=1)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def submit(eid: uuid.UUID, category: str = "image", tool: str = "image-rotate") -> Submit:
    return Submit(
        execution_id=eid,
        tool=tool,
        category=category,
        tool_version="1",
        mode="async",
        owner="7",
        params={"angle": 90},
    )


def start(worker: str = "worker-1") -> Start:
    return Start(worker, T0, DEFAULT_TIMEOUT)


def running(service: ExecutionService) -> uuid.UUID:
    eid = uuid.uuid4()
    service.handle(eid, submit(eid))
    service.handle(eid, start())
    return eid


def types(service: ExecutionService, eid: uuid.UUID) -> list[str]:
    return [e.type.rsplit(".", 1)[1] for e in service.history(eid)]


# -- what the service writes ---------------------------------------------------------------------


def test_a_run_is_written_in_order_with_subject_and_trace(store: EventStore) -> None:
    service = ExecutionService(store, clock=FakeClock())
    eid = uuid.uuid4()
    output = blob("processed")
    outcomes = [
        service.handle(eid, submit(eid, "video", "video-trim")),
        service.handle(eid, start()),
        service.handle(eid, ReportProgress(50, "half"), Trace(causation_id="req-42")),
        service.handle(eid, Complete(900, output=output)),
    ]

    history = service.history(eid)
    assert types(service, eid) == ["Submitted", "Processing", "Progress", "Completed"]
    assert [e.version for e in history] == [0, 1, 2, 3]
    assert [o.version for o in outcomes] == [0, 1, 2, 3]
    payloads = [e.payload() for e in history]
    assert isinstance(payloads[0], Submitted) and payloads[0].execution_id == eid
    assert payloads[2] == Progress(percent=50, message="half")
    assert payloads[3] == Completed(output=output, duration_ms=900)
    for event in history:
        assert event.subject == f"/tools/video/video-trim/executions/{eid}"
        assert event.metadata["correlationid"] == str(eid)
        assert TRACEPARENT.match(event.metadata["traceparent"])
    assert [e.metadata.get("causationid") for e in history] == [None, None, "req-42", None]

    final = outcomes[-1].state
    assert final == service.load(eid).state
    assert (final.status, final.output, final.percent) == (Status.COMPLETED, output, 100.0)


def test_a_given_trace_is_carried_into_the_events(store: EventStore) -> None:
    service = ExecutionService(store)
    eid = uuid.uuid4()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    trace = Trace(correlation_id="upload-form-9", causation_id="evt-1", traceparent=traceparent)
    outcome = service.handle(eid, submit(eid), trace)

    [event] = service.history(eid)
    assert event.metadata == {
        "correlationid": "upload-form-9",
        "causationid": "evt-1",
        "traceparent": traceparent,
    }
    assert outcome.events[0].id == event.id
    assert event.to_cloudevent()["traceparent"] == traceparent


def test_events_take_their_time_from_the_clock(store: EventStore) -> None:
    service = ExecutionService(store, clock=FakeClock())
    eid = running(service)
    assert [e.time for e in service.history(eid)] == [T0, T0 + timedelta(minutes=1)]


# -- refusals write nothing ----------------------------------------------------------------------


def test_a_command_for_an_unknown_execution_writes_nothing(store: EventStore) -> None:
    service = ExecutionService(store)
    eid = uuid.uuid4()
    with pytest.raises(ExecutionNotFound):
        service.handle(eid, start())
    assert service.history(eid) == []
    assert store.stream_version(execution_stream(eid)) == -1


def test_an_illegal_command_appends_nothing(store: EventStore) -> None:
    service = ExecutionService(store)
    eid = running(service)
    service.handle(eid, Cancel("stop"))
    head = store.head_position()
    with pytest.raises(IllegalTransition, match="Complete: the execution is cancelled"):
        service.handle(eid, Complete(10, result="late"))
    assert types(service, eid) == ["Submitted", "Processing", "Cancelled"]
    assert store.head_position() == head


def test_a_sequence_of_commands_is_decided_in_turn_and_appended_as_one_batch(
    store: EventStore,
) -> None:
    service = ExecutionService(store)
    eid = uuid.uuid4()
    outcome = service.handle(eid, [submit(eid), start()])
    assert types(service, eid) == ["Submitted", "Processing"]
    assert outcome.state.status is Status.PROCESSING and outcome.version == 1
    assert outcome.append.first_position + 1 == outcome.append.last_position  # one append


def test_a_sequence_with_an_illegal_command_appends_none_of_it(store: EventStore) -> None:
    service = ExecutionService(store)
    eid = running(service)
    head = store.head_position()
    with pytest.raises(IllegalTransition, match="Start"):
        service.handle(eid, [Cancel("stop"), start("worker-2")])
    assert types(service, eid) == ["Submitted", "Processing"]  # not even the Cancelled
    assert store.head_position() == head


# -- time travel ---------------------------------------------------------------------------------


def test_state_at_a_version(store: EventStore) -> None:
    service = ExecutionService(store, clock=FakeClock())
    eid = running(service)
    service.handle(eid, ReportProgress(30))
    service.handle(eid, Complete(10, result="ok"))

    assert service.state_at(eid, version=0).status is Status.SUBMITTED
    assert service.state_at(eid, version=1).status is Status.PROCESSING
    at_progress = service.state_at(eid, version=2)
    assert (at_progress.status, at_progress.percent) == (Status.PROCESSING, 30)
    assert service.state_at(eid, version=3) == service.load(eid).state
    assert service.state_at(eid) == service.load(eid).state


def test_state_at_a_moment(store: EventStore) -> None:
    service = ExecutionService(store, clock=FakeClock())
    eid = running(service)  # Submitted at T0, Processing at T0+1m
    service.handle(eid, ReportProgress(30))  # T0+2m
    service.handle(eid, Complete(10, result="ok"))  # T0+3m

    assert service.state_at(eid, at=T0 - timedelta(seconds=1)).status is Status.NEW
    assert service.state_at(eid, at=T0).status is Status.SUBMITTED
    assert service.state_at(eid, at=T0 + timedelta(seconds=90)).status is Status.PROCESSING
    halfway = service.state_at(eid, at=T0 + timedelta(minutes=2, seconds=59))
    assert (halfway.status, halfway.percent) == (Status.PROCESSING, 30)
    assert service.state_at(eid, at=T0 + timedelta(minutes=3)).status is Status.COMPLETED


# -- optimistic concurrency ----------------------------------------------------------------------


class InterleavingStore:
    """A test stand-in around a real store: before the service's first append lands, another
    writer appends ``interloper`` to the same stream, so the real store refuses the append."""

    def __init__(self, inner: EventStore, interloper) -> None:
        self.inner = inner
        self.interloper = interloper
        self.appends = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def append(self, stream, events, expected_version=-2):
        self.appends += 1
        if self.appends == 1:
            self.inner.append(stream, [new_event(self.interloper)], expected_version)
        return self.inner.append(stream, events, expected_version)


def test_a_lost_race_is_decided_again_on_the_new_state(store: EventStore) -> None:
    eid = running(ExecutionService(store))
    racing = InterleavingStore(store, Progress(percent=30, message="other worker"))
    service = ExecutionService(racing)

    outcome = service.handle(eid, ReportProgress(60, "mine"))

    assert racing.appends == 2
    assert types(service, eid) == ["Submitted", "Processing", "Progress", "Progress"]
    assert [e.payload().message for e in service.history(eid)[2:]] == ["other worker", "mine"]
    assert outcome.version == 3
    assert outcome.state.percent == 60


def test_a_lost_race_can_turn_into_a_refusal(store: EventStore) -> None:
    eid = running(ExecutionService(store))
    racing = InterleavingStore(store, Cancelled(reason="owner cancelled"))
    service = ExecutionService(racing)

    with pytest.raises(IllegalTransition, match="is cancelled"):
        service.handle(eid, Complete(10, result="done"))

    assert types(service, eid) == ["Submitted", "Processing", "Cancelled"]


class AlwaysConflicting:
    """A test stand-in: every append finds another writer got there first."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.appends = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def append(self, stream, events, expected_version=-2):
        self.appends += 1
        raise WrongExpectedVersion(stream, expected_version, expected_version + 1)


def test_concurrency_conflict_after_max_retries(store: EventStore) -> None:
    eid = running(ExecutionService(store))
    conflicting = AlwaysConflicting(store)
    service = ExecutionService(conflicting, max_conflict_retries=3)

    with pytest.raises(ConcurrencyConflict):
        service.handle(eid, ReportProgress(10))

    assert conflicting.appends == 4
    assert types(service, eid) == ["Submitted", "Processing"]


def test_racing_starts_give_one_processing_and_one_illegal_transition(store: EventStore) -> None:
    """Sequential stand-in for the threaded race in test_start_race.py."""
    eid = uuid.uuid4()
    service = ExecutionService(store)
    service.handle(eid, submit(eid))
    racing = InterleavingStore(
        store, Processing(attempt=1, worker_id="worker-a", deadline=T0 + DEFAULT_TIMEOUT)
    )
    with pytest.raises(IllegalTransition, match="Start: the execution is processing"):
        ExecutionService(racing).handle(eid, start("worker-b"))
    processing = [e.payload() for e in service.history(eid) if e.type.endswith("Processing")]
    assert [p.worker_id for p in processing] == ["worker-a"]


# -- deadlines -----------------------------------------------------------------------------------
