"""Submitting an execution: a refused submission leaves nothing behind, an accepted one is recorded.

On both event store backends and the real local blob store: a refusal appends no event and
stores no upload; an accepted upload becomes exactly ``Submitted`` then ``Uploaded``.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from events.catalog import Submitted, Uploaded
from events.store import EventStore
from services.blobs.local import LocalBlobStore
from services.executions.decider import Status
from services.executions.service import ExecutionService
from services.tools.base import BaseTool, OutputKind, ToolContext
from services.tools.registry import ToolRegistry
from services.tools.runner import ToolRunner
from services.tools.submissions import SubmissionRefused, Upload, submit


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
def blobs(tmp_path: Path) -> LocalBlobStore:
    store = LocalBlobStore(tmp_path / "blobs", signing_key=b"k")
    store.setup()
    return store


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([Wrap, Clock])


@pytest.fixture
def service(store: EventStore) -> ExecutionService:
    return ExecutionService(store)


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
    registry: ToolRegistry,
    blobs: LocalBlobStore,
    tool: str,
    params: dict,
    upload: Upload | None,
    code: str,
    status: int,
) -> None:
    head = store.head_position()
    eid = uuid.uuid4()

    with pytest.raises(SubmissionRefused) as refused:
        submit(
            service,
            registry,
            blobs,
            tool=tool,
            owner="t",
            params=params,
            upload=upload,
            execution_id=eid,
        )

    assert (refused.value.code, refused.value.status) == (code, status)
    assert str(refused.value)  # a message for people, not just a code
    assert store.head_position() == head
    assert service.history(eid) == []
    assert list(blobs.list("uploads")) == []


def test_an_invalid_param_is_named_in_the_refusal(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    with pytest.raises(SubmissionRefused, match="width"):
        submit(service, registry, blobs, tool="test-wrap", owner="t", params={"width": "wide"})


def test_an_accepted_upload_is_submitted_then_uploaded(
    store: EventStore, service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    eid = submit(
        service,
        registry,
        blobs,
        tool="test-wrap",
        owner="alice",
        params={"label": "mine"},
        upload=notes(),
    )

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
    assert service.load(eid)[0].status is Status.UPLOADED


def test_a_tool_without_input_is_submitted_alone(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    eid = submit(service, registry, blobs, tool="test-clock", owner="t")

    [submitted] = [e.payload() for e in service.history(eid)]
    assert isinstance(submitted, Submitted)
    assert (submitted.mode, submitted.input, submitted.params) == ("sync", None, {})
    assert service.load(eid)[0].status is Status.SUBMITTED


def test_a_submission_for_an_existing_execution_leaves_its_input_alone(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    eid = submit(service, registry, blobs, tool="test-wrap", owner="alice", upload=notes())
    other = b"other bytes\n"

    with pytest.raises(SubmissionRefused, match="exists"):
        submit(
            service,
            registry,
            blobs,
            tool="test-wrap",
            owner="mallory",
            upload=Upload("notes.txt", [other], len(other)),
            execution_id=eid,
        )

    upload = service.load(eid)[0].upload
    assert upload is not None
    assert b"".join(blobs.get(upload.container, upload.name)) == NOTES


def test_a_sync_run_can_start_in_the_submissions_own_commit(
    store: EventStore, service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    eid = submit(service, registry, blobs, tool="test-clock", owner="t", start_as="web-1")
    recorded = service.history(eid)
    assert [e.type.rsplit(".", 1)[1] for e in recorded] == ["Submitted", "Processing"]
    assert recorded[0].time == recorded[1].time  # decided and written together
    state, _ = service.load(eid)
    assert (state.status, state.worker_id, state.attempt) == (Status.PROCESSING, "web-1", 1)

    runner = ToolRunner(service, blobs, registry, worker_id="web-1")
    report = runner.run(eid, started_here=True)
    assert report.outcome == "completed" and service.load(eid)[0].result == "noon"


def test_a_started_run_is_only_continued_by_the_worker_that_started_it(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    eid = submit(service, registry, blobs, tool="test-clock", owner="t", start_as="web-1")
    other = ToolRunner(service, blobs, registry, worker_id="web-2")
    assert other.run(eid, started_here=True).outcome == "skipped"
    assert service.load(eid)[0].status is Status.PROCESSING


def test_an_async_submission_is_never_started_by_its_submitter(
    service: ExecutionService, registry: ToolRegistry, blobs: LocalBlobStore
) -> None:
    eid = submit(
        service, registry, blobs, tool="test-wrap", owner="t", upload=notes(), start_as="web-1"
    )
    assert service.load(eid)[0].status is Status.UPLOADED  # a worker takes it from the queue


def test_the_loser_of_a_race_for_one_execution_id_leaves_the_winners_input_alone(
    service: ExecutionService,
    registry: ToolRegistry,
    blobs: LocalBlobStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eid = uuid.uuid4()
    winner = submit(service, registry, blobs, tool="test-wrap", owner="t", upload=notes(),
                    execution_id=eid)  # fmt: skip
    [first] = [item.name for item in blobs.list("uploads")]
    # The loser checked before the winner appended: it saw no stream, then lost at the append.
    real_load = service.load
    monkeypatch.setattr(
        service, "load", lambda i: (real_load(i)[0], -1) if i == eid else real_load(i)
    )
    other = Upload("notes.txt", [b"other content"])
    with pytest.raises(SubmissionRefused) as refused:
        submit(service, registry, blobs, tool="test-wrap", owner="t", upload=other,
               execution_id=eid)  # fmt: skip
    assert refused.value.code == "execution_exists" and winner == eid
    assert [item.name for item in blobs.list("uploads")] == [first]  # the loser's removed
    assert b"".join(blobs.get("uploads", first)) == NOTES  # the winner's intact
