"""A hypothesis state machine drives random commands through the command service; after every
step each stream is still valid and the status read model equals the decider's fold of it.

Runs on SQLite and on PostgreSQL (a fresh schema per run).
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from events.catalog import DeclaredInput
from events.opening import open_store
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
    Submit,
    TimeOut,
)
from services.executions.decider import DomainError, Status, execution
from services.executions.service import ExecutionService
from tests.conftest import PG_URL, require_postgres
from tests.events.factories import blob
from tests.projections.support import wait_readable

NOW = datetime(2030, 1, 1, tzinfo=UTC)
COMMANDS = st.one_of(
    st.builds(lambda: RecordUpload(blob=blob())),
    st.just(Start("worker-1", NOW, timedelta(minutes=5))),
    st.floats(0, 100, allow_nan=False).map(lambda p: ReportProgress(p, "working")),
    st.just(Complete(duration_ms=10, output=blob("processed"))),
    st.just(Complete(duration_ms=3, result="aGk=")),
    st.builds(lambda r: Fail("tool_crashed", "exit 1", r), st.booleans()),
    st.just(Fail("tool_crashed", "exit 1", True, NOW + timedelta(seconds=30), 3)),
    st.builds(Retry, st.integers(1, 4), st.booleans()),
    st.just(TimeOut(NOW + timedelta(hours=1))),
    st.just(Cancel("changed my mind")),
    st.just(Expire()),
)


NEXT = {
    Status.SUBMITTED: [Start("worker-1", NOW, timedelta(minutes=5))],
    Status.UPLOADED: [Start("worker-1", NOW, timedelta(minutes=5)), Cancel()],
    Status.RETRYING: [Start("worker-2", NOW, timedelta(minutes=5))],
    Status.PROCESSING: [
        ReportProgress(40, "halfway"),
        Fail("tool_crashed", "exit 1", True),
        Fail("tool_crashed", "exit 1", True, NOW + timedelta(seconds=30), 3),
        TimeOut(NOW + timedelta(hours=1), NOW + timedelta(hours=1, seconds=30), 3),
        Complete(duration_ms=10, output=blob("processed")),
    ],
    Status.FAILED: [Retry(max_attempts=3), Retry(max_attempts=3, by_owner=True), Expire()],
    Status.COMPLETED: [Expire()],
    Status.CANCELLED: [Expire()],
    Status.EXPIRED: [],
}


class ExecutionsMachine(RuleBasedStateMachine):
    backend = "sqlite"
    executions = Bundle("executions")

    def __init__(self) -> None:
        super().__init__()
        if self.backend == "sqlite":
            self._dir = tempfile.TemporaryDirectory()
            self.url = f"sqlite:///{Path(self._dir.name) / 'mt.sqlite3'}"
        else:
            self.schema = f"mt_sm_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')
            self.url = f"{PG_URL}?schema={self.schema}"
        self.store = open_store(self.url)
        self.store.setup()
        self.service = ExecutionService(self.store)
        self.projector = Projector(self.store, self.url, first_backoff=0.0)
        self.projector.setup()
        self.accepted = 0

    @rule(target=executions, with_input=st.booleans())
    def submit(self, with_input: bool) -> uuid.UUID:
        eid = uuid.uuid4()
        declared = DeclaredInput(filename="a.png", size=9, content_type="image/png")
        self.service.handle(
            eid,
            Submit(
                eid,
                "image-rotate",
                "image",
                "1",
                "async",
                "7",
                {},
                declared if with_input else None,
            ),
        )
        return eid

    @rule(execution=executions, command=COMMANDS)
    def command(self, execution: uuid.UUID, command) -> None:
        before = self.service.load(execution).version
        try:
            self.service.handle(execution, command)
        except DomainError:
            assert self.service.load(execution).version == before  # a refusal writes nothing
        else:
            self.accepted += 1

    @rule(execution=executions, choice=st.integers(0, 5))
    def advance(self, execution: uuid.UUID, choice: int) -> None:
        """A command that is legal now, so histories get far (retries, expiry) in few steps."""
        state = self.service.load(execution).state
        options = NEXT[state.status]
        if state.status is Status.SUBMITTED and state.input is not None:
            options = [RecordUpload(blob=blob()), Cancel()]
        if options:
            self.command(execution, options[choice % len(options)])

    @invariant()
    def streams_are_valid_and_the_status_model_equals_the_fold(self) -> None:
        wait_readable(self.store)
        while self.projector.run_once():
            pass
        for stream in self.store.streams(prefix="execution-"):
            events = self.store.read_stream(stream)
            assert [e.version for e in events] == list(range(len(events)))
            assert self.store.verify(stream).ok
            state = execution.fold(e.payload() for e in events)
            with self.projector._lock:
                row = status.get(self.projector.db, str(state.execution_id))
            assert row is not None, stream
            # A failure with its retry scheduled reads "retrying"; the decider keeps it FAILED.
            pending = state.status is Status.FAILED and state.next_attempt_at is not None
            assert row.status == (Status.RETRYING.value if pending else state.status.value)
            assert row.max_attempts == state.max_attempts
            if row.status == Status.RETRYING.value:
                assert row.finished_at is None and row.next_attempt_at == state.next_attempt_at
            assert row.attempt == state.attempt
            assert row.percent == pytest.approx(state.percent)
            assert row.stream_version == events[-1].version
            assert row.error_code == (state.error.code if state.error else None)
            assert row.output_blob == (state.output.name if state.output else None)
            assert row.result == state.result
            if state.status is Status.EXPIRED:
                assert row.finished_at is not None

    def teardown(self) -> None:
        self.projector.close()
        self.store.close()
        if self.backend == "sqlite":
            self._dir.cleanup()
        else:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


SETTINGS = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_random_commands_on_sqlite() -> None:
    ExecutionsMachine.TestCase.settings = SETTINGS
    ExecutionsMachine.TestCase().runTest()


class PostgresMachine(ExecutionsMachine):
    backend = "postgres"


def test_random_commands_on_postgres() -> None:
    require_postgres()
    PostgresMachine.TestCase.settings = SETTINGS
    PostgresMachine.TestCase().runTest()
