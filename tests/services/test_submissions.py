"""Submitting an execution: a refused submission leaves nothing behind, an accepted one is recorded.

On both event store backends and the real local blob store: a refusal appends no event and
stores no upload; an accepted upload becomes exactly ``Submitted`` then ``Uploaded``; a repeated
idempotent submit stores nothing; a sync tool runs in place, started in the submit's commit.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from events.catalog import Submitted, Uploaded
from events.store import EventStore
from services.blobs.local import LocalBlobStore
from services.executions.actions import ExecutionActions, Upload, idempotent_id
from services.executions.commands import Submit
from services.executions.decider import Status
from services.executions.runner import ToolRunner
from services.executions.service import Execution, ExecutionService
from services.problems import Problem
from services.tools.base import BaseTool, OutputKind, ToolContext
from services.tools.registry import ToolRegistry
from services.workers.pool import WorkerPool


class WrapParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(default=80, ge=1)
    label: str = "wrapped"


class Wrap(BaseTool):
    slug = "test-wrap"
    name = "Wrap text"
    category = "data"
    mode = "async"
    version = "2.1.0"
    Params = WrapParams
    accepts: ClassVar[dict[str, str]] = {".txt": "text/plain"}
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text(ctx.require_input().read().decode())


class Clock(BaseTool):
    slug = "test-clock"
    name = "Clock"
    category = "data"
    mode = "sync"
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("noon")


NOTES = b"some notes\n"


def notes() -> Upload:
    return Upload("notes.txt", [NOTES], len(NOTES))


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([Wrap, Clock])


@pytest.fixture
def service(store: EventStore) -> ExecutionService:
    return ExecutionService(store)


@pytest.fixture
def actions(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore, tool_pool: WorkerPool
) -> ExecutionActions:
    return ExecutionActions(
        service, registry, blobs, lambda: ToolRunner(service, blobs, registry, pool=tool_pool)
    )


@pytest.mark.parametrize(
    ("tool", "params", "upload", "code", "status"),
    [
        ("no-such-tool", {}, notes(), "unknown_tool", 404),
        ("test-wrap", {"width": 0}, notes(), "invalid_params", 400),
        ("test-wrap", {"colour": "red"}, notes(), "invalid_params", 400),
        ("test-wrap", {}, None, "input_required", 400),
        ("test-clock", {}, notes(), "no_input_expected", 400),
    ],
    ids=["unknown-tool", "param-out-of-range", "unknown-param", "no-upload", "unwanted-upload"],
)
def test_a_refused_submission_leaves_nothing_behind(
    store: EventStore,
    service: ExecutionService,
    actions: ExecutionActions,
    blobs: LocalBlobStore,
    tool: str,
    params: dict,
    upload: Upload | None,
    code: str,
    status: int,
) -> None:
    head = store.head_position()

    with pytest.raises(Problem) as refused:
        actions.submit("t", tool, params, upload, idempotency_key="k1")

    assert (refused.value.code, refused.value.status) == (code, status)
    assert str(refused.value)  # a message for people, not just a code
    assert store.head_position() == head
    assert service.history(idempotent_id("t", "k1")) == []
    assert list(blobs.list("uploads")) == []


def test_an_invalid_param_is_named_in_the_refusal(actions: ExecutionActions) -> None:
    with pytest.raises(Problem, match="width"):
        actions.submit("t", "test-wrap", {"width": "wide"}, notes())


def test_an_accepted_upload_is_submitted_then_uploaded(
    store: EventStore, service: ExecutionService, actions: ExecutionActions, blobs: LocalBlobStore
) -> None:
    submission = actions.submit("alice", "test-wrap", {"label": "mine"}, notes())
    eid = submission.execution.id

    assert submission.created and submission.tool.slug == "test-wrap"
    events = [e.payload() for e in service.history(eid)]
    assert [type(e) for e in events] == [Submitted, Uploaded]
    submitted, uploaded = events
    assert isinstance(submitted, Submitted) and isinstance(uploaded, Uploaded)
    assert submitted.execution_id == eid
    assert (submitted.tool, submitted.category, submitted.tool_version, submitted.mode) == (
        "test-wrap",
        "data",
        "2.1.0",
        "async",
    )
    assert submitted.owner == "alice"
    assert submitted.params == {"width": 80, "label": "mine"}  # defaults filled in
    assert submitted.input is not None
    assert (submitted.input.filename, submitted.input.size) == ("notes.txt", len(NOTES))
    blob = uploaded.blob
    assert blob.container == "uploads" and blob.name.startswith(f"{eid}/")
    assert (blob.size, blob.sha256) == (len(NOTES), hashlib.sha256(NOTES).hexdigest())
    assert b"".join(blobs.get("uploads", blob.name)) == NOTES
    assert [item.name for item in blobs.list("uploads")] == [blob.name]
    assert service.load(eid).state.status is Status.UPLOADED
    # What the submit returns is the stream as stored: no read needed to show it.
    assert submission.execution.stream == tuple(service.history(eid))


def test_a_tool_without_input_is_submitted_alone(
    service: ExecutionService, actions: ExecutionActions
) -> None:
    eid = actions.submit("t", "test-clock", run_sync=False).execution.id

    [submitted] = [e.payload() for e in service.history(eid)]
    assert isinstance(submitted, Submitted)
    assert (submitted.mode, submitted.input, submitted.params) == ("sync", None, {})
    assert service.load(eid).state.status is Status.SUBMITTED


def test_a_repeated_idempotent_submit_returns_the_first_and_stores_nothing(
    store: EventStore, service: ExecutionService, actions: ExecutionActions, blobs: LocalBlobStore
) -> None:
    first = actions.submit("alice", "test-wrap", {}, notes(), idempotency_key="order-42")
    head = store.head_position()
    other = b"other bytes\n"

    again = actions.submit(
        "alice", "test-wrap", {}, Upload("notes.txt", [other]), idempotency_key="order-42"
    )

    assert (first.created, again.created) == (True, False)
    assert again.execution.id == first.execution.id
    assert store.head_position() == head
    upload = service.load(first.execution.id).state.upload
    assert upload is not None
    assert [item.name for item in blobs.list("uploads")] == [upload.name]
    assert b"".join(blobs.get(upload.container, upload.name)) == NOTES
    with pytest.raises(Problem) as reused:
        actions.submit("alice", "test-clock", idempotency_key="order-42")
    assert (reused.value.code, reused.value.status) == ("idempotency_key_reused", 422)


def test_one_submit_looks_its_tool_up_once_and_reads_its_stream_at_most_once(
    store: EventStore, registry: ToolRegistry, actions: ExecutionActions, monkeypatch
) -> None:
    # A warm worker first: on a cold pool the run waits for a worker to start, and a run that
    # long checks its stream for a cancellation (a read this test is not about).
    actions.submit("t", "test-clock")
    reads: list[str] = []
    lookups: list[str] = []
    real_read, real_get = store.read_stream, registry.get
    monkeypatch.setattr(store, "read_stream", lambda s, *a: reads.append(s) or real_read(s, *a))
    monkeypatch.setattr(registry, "get", lambda slug: lookups.append(slug) or real_get(slug))

    plain = actions.submit("t", "test-clock")
    assert (len(reads), lookups) == (0, ["test-clock"])  # a new stream: nothing to read
    assert plain.execution.state.status is Status.COMPLETED

    reads.clear()
    lookups.clear()
    keyed = actions.submit("t", "test-clock", idempotency_key="sync-1")
    assert (len(reads), lookups) == (1, ["test-clock"])  # the key's: does it exist already?
    assert keyed.execution.state.result == "noon"

    reads.clear()
    lookups.clear()
    repeat = actions.submit("t", "test-clock", idempotency_key="sync-1")
    assert (len(reads), lookups, repeat.created) == (1, ["test-clock"], False)


def test_a_sync_run_starts_in_the_submissions_own_commit(
    store: EventStore, service: ExecutionService, actions: ExecutionActions, tool_pool: WorkerPool
) -> None:
    submission = actions.submit("t", "test-clock")
    recorded = service.history(submission.execution.id)
    assert [e.type.rsplit(".", 1)[1] for e in recorded] == ["Submitted", "Processing", "Completed"]
    assert recorded[0].time == recorded[1].time  # decided and written together
    state = submission.execution.state
    assert (state.status, state.attempt, state.result) == (Status.COMPLETED, 1, "noon")
    # Recorded under the pool's worker that ran it: "<process id>/<worker pid>", not this one.
    assert state.worker_id is not None
    process_id, pid = state.worker_id.rsplit("/", 1)
    assert process_id == tool_pool.process_id and int(pid) != os.getpid()


def test_a_started_run_is_only_continued_on_the_worker_it_was_started_on(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore, tool_pool: WorkerPool
) -> None:
    runner = ToolRunner(service, blobs, registry, pool=tool_pool)
    clock = registry.get("test-clock")
    eid = uuid.uuid4()
    submit = Submit(eid, "test-clock", "data", "1.0.0", "sync", owner="t")
    slot = runner.reserve("t")
    other = runner.reserve("t")  # another worker of the pool
    assert other.worker_id != slot.worker_id
    service.handle(eid, [submit, runner.start(slot, clock)], known=Execution.new(eid))
    assert service.load(eid).state.worker_id == slot.worker_id

    assert runner.run(eid, tool=clock, slot=other).outcome == "skipped"
    state = service.load(eid).state
    assert (state.status, state.worker_id) == (Status.PROCESSING, slot.worker_id)

    report = runner.run(eid, tool=clock, slot=slot)
    assert (report.outcome, report.attempt) == ("completed", 1)
    state = service.load(eid).state
    assert (state.result, state.worker_id) == ("noon", slot.worker_id)
    # Both slots went back to the pool, skipped or not: both workers can be had again at once
    # (PoolBusy after 5 s otherwise).
    with tool_pool.acquire("t", timeout=5), tool_pool.acquire("t", timeout=5):
        pass


def test_a_slot_for_an_execution_that_is_not_started_runs_nothing(
    service: ExecutionService,
    actions: ExecutionActions,
    registry: ToolRegistry,
    blobs: LocalBlobStore,
    tool_pool: WorkerPool,
) -> None:
    eid = actions.submit("t", "test-clock", run_sync=False).execution.id
    runner = ToolRunner(service, blobs, registry, pool=tool_pool)

    assert runner.run(eid, slot=runner.reserve("t")).outcome == "skipped"

    assert service.load(eid).state.status is Status.SUBMITTED
    assert [e.type.rsplit(".", 1)[1] for e in service.history(eid)] == ["Submitted"]


def test_an_async_submission_is_never_started_by_its_submitter(
    service: ExecutionService, actions: ExecutionActions
) -> None:
    eid = actions.submit("t", "test-wrap", {}, notes()).execution.id
    assert service.load(eid).state.status is Status.UPLOADED  # a worker takes it from the queue


def test_the_loser_of_a_race_for_one_key_leaves_the_winners_input_alone(
    service: ExecutionService,
    actions: ExecutionActions,
    blobs: LocalBlobStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    winner = actions.submit("t", "test-wrap", {}, notes(), idempotency_key="race")
    eid = winner.execution.id
    [first] = [item.name for item in blobs.list("uploads")]
    # The loser looked before the winner appended: it saw no stream, then lost at the append.
    real_load = service.load
    looks = iter([Execution.new(eid)])
    monkeypatch.setattr(service, "load", lambda i: next(looks, None) or real_load(i))
    other = Upload("notes.txt", [b"other content"])

    loser = actions.submit("t", "test-wrap", {}, other, idempotency_key="race")

    assert loser.execution.id == eid and not loser.created  # the winner's is the answer
    assert [item.name for item in blobs.list("uploads")] == [first]  # the loser's removed
    assert b"".join(blobs.get("uploads", first)) == NOTES  # the winner's intact
