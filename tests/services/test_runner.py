"""The tool runner on a real event store and a real local blob store, with tools defined here.

Each test submits an execution the way a request does (``submit``), runs it with
``ToolRunner.run`` and reads the outcome back from the execution's stream: what a user sees is
the events (Completed with its result or blob, Failed with its code) and the blobs left behind.
Races (duplicate deliveries, a cancel or a timeout while a tool runs) use real threads.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from events.catalog import Completed, EventPayload, Failed, Progress
from events.opening import open_store
from events.store import EventStore
from services.blobs.local import LocalBlobStore
from services.executions.actions import ExecutionActions, Upload
from services.executions.commands import Cancel, Submit, TimeOut
from services.executions.decider import Status
from services.executions.runner import MAX_INLINE_RESULT, RunReport, ToolRunner
from services.executions.service import ExecutionService
from services.tools.base import (
    BaseTool,
    InvalidInput,
    OutputKind,
    ToolContext,
    ToolError,
    TransientToolError,
)
from services.tools.registry import ToolRegistry, discover

# -- tools made for these tests -------------------------------------------------------------


class Shout(BaseTool):
    """Upper-cases an uploaded text: an inline text result."""

    slug = "test-shout"
    name = "Shout"
    category = "data"
    mode = "async"
    accepts: ClassVar[dict[str, str]] = {".txt": "text/plain"}
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text(ctx.require_input().read().decode().upper())


class Reverse(BaseTool):
    """Reverses an uploaded file's bytes: a file result."""

    slug = "test-reverse"
    name = "Reverse"
    category = "data"
    mode = "async"
    accepts: ClassVar[dict[str, str]] = {".txt": "text/plain"}

    def run(self, ctx: ToolContext) -> None:
        data = ctx.require_input().read()
        ctx.output.bytes(data[::-1], "reversed.txt", "text/plain")


class RepeatParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 10


class Repeat(BaseTool):
    """A text of ``size`` x's, built from params alone."""

    slug = "test-repeat"
    name = "Repeat"
    category = "data"
    mode = "async"
    Params = RepeatParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("x" * ctx.params.size)  # type: ignore[attr-defined]


class StepsParams(BaseModel):
    steps: int = 5


class Steps(BaseTool):
    """Reports progress at every step."""

    slug = "test-steps"
    name = "Steps"
    category = "data"
    mode = "async"
    Params = StepsParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        steps = ctx.params.steps  # type: ignore[attr-defined]
        for i in range(1, steps + 1):
            ctx.progress(100 * i / steps, f"step {i} of {steps}")
        ctx.output.text("done")


class FaultParams(BaseModel):
    fault: Literal["invalid_input", "transient", "crash", "no_output"]


class Faulty(BaseTool):
    """Fails the way its params say."""

    slug = "test-faulty"
    name = "Faulty"
    category = "data"
    mode = "async"
    Params = FaultParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        match ctx.params.fault:  # type: ignore[attr-defined]
            case "invalid_input":
                raise InvalidInput("this is not a spreadsheet")
            case "transient":
                raise TransientToolError("the converter is busy")
            case "crash":
                raise RuntimeError("disk on fire")
            case "no_output":
                return


class SyncEcho(BaseTool):
    slug = "test-sync-echo"
    name = "Sync echo"
    category = "data"
    mode = "sync"
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("echo")


class Cancellable(BaseTool):
    """Works in small steps, checking for cancellation between them, for up to 10 s."""

    slug = "test-cancellable"
    name = "Cancellable"
    category = "data"
    mode = "async"
    output = OutputKind.TEXT

    def __init__(self) -> None:
        self.temp_dirs: list[Path] = []

    def run(self, ctx: ToolContext) -> None:
        self.temp_dirs.append(ctx.temp_dir)
        (ctx.temp_dir / "scratch.bin").write_bytes(b"half done")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            time.sleep(0.005)
        ctx.output.text("never cancelled")


class SlowFile(BaseTool):
    """Waits until the test releases it, then hands over a file (it never checks for cancel)."""

    slug = "test-slow-file"
    name = "Slow file"
    category = "data"
    mode = "async"

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, ctx: ToolContext) -> None:
        assert self.release.wait(10), "the test never released the tool"
        ctx.output.bytes(b"too late", "late.bin", "application/octet-stream")


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def sqlite_store(sqlite_store_url: str) -> Iterator[EventStore]:
    s = open_store(sqlite_store_url)
    s.setup()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def registry() -> ToolRegistry:
    tools = [Shout, Reverse, Repeat, Steps, Faulty, SyncEcho, Cancellable(), SlowFile()]
    registry = ToolRegistry(tools)
    assert registry.problems == []
    return registry


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


class Harness:
    def __init__(
        self, store: EventStore, blobs: LocalBlobStore, registry: ToolRegistry, work_dir: Path
    ) -> None:
        self.store = store
        self.service = ExecutionService(store)
        self.blobs = blobs
        self.registry = registry
        self.work_dir = work_dir

    def runner(self, worker_id: str = "w1", progress_interval: float = 0.0) -> ToolRunner:
        return ToolRunner(
            self.service,
            self.blobs,
            self.registry,
            worker_id=worker_id,
            progress_interval=progress_interval,
            cancel_check_interval=0.0,
            temp_root=self.work_dir,
        )

    def submit(self, tool: str, data: bytes | None = None, params: dict | None = None) -> uuid.UUID:
        """Submitted (and uploaded), not run: the test runs it."""
        upload = None if data is None else Upload("notes.txt", [data], len(data))
        actions = ExecutionActions(self.service, self.registry, self.blobs, self.runner)
        return actions.submit("t", tool, params, upload, run_sync=False).execution.id

    def run(self, eid: uuid.UUID, **options: object) -> RunReport:
        return self.runner().run(eid, **options)  # type: ignore[arg-type]

    def events(self, eid: uuid.UUID) -> list[EventPayload]:
        return [e.payload() for e in self.service.history(eid)]

    def names(self, eid: uuid.UUID) -> list[str]:
        return [p.name for p in self.events(eid)]

    def last(self, eid: uuid.UUID) -> EventPayload:
        return self.events(eid)[-1]

    def status(self, eid: uuid.UUID) -> Status:
        return self.service.load(eid).state.status

    def blob_bytes(self, container: str, name: str) -> bytes:
        return b"".join(self.blobs.get(container, name))


@pytest.fixture
def h(
    sqlite_store: EventStore, blobs: LocalBlobStore, registry: ToolRegistry, work_dir: Path
) -> Iterator[Harness]:
    harness = Harness(sqlite_store, blobs, registry, work_dir)
    yield harness
    assert list(work_dir.iterdir()) == [], "a run left its temp dir behind"


@pytest.fixture
def hb(
    store: EventStore, blobs: LocalBlobStore, registry: ToolRegistry, work_dir: Path
) -> Iterator[Harness]:
    """The same harness on both event store backends (SQLite and PostgreSQL)."""
    harness = Harness(store, blobs, registry, work_dir)
    yield harness
    assert list(work_dir.iterdir()) == [], "a run left its temp dir behind"


def in_background(action: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never came true")
        time.sleep(0.005)


# -- results ------------------------------------------------------------------------------


def test_a_text_result_completes_inline(h: Harness) -> None:
    eid = h.submit("test-shout", b"hello world")

    report = h.run(eid)

    assert (report.outcome, report.attempt) == ("completed", 1)
    assert h.names(eid) == ["Submitted", "Uploaded", "Processing", "Completed"]
    completed = h.last(eid)
    assert isinstance(completed, Completed)
    assert (completed.result, completed.output) == ("HELLO WORLD", None)
    assert list(h.blobs.list("processed")) == []


def test_a_file_result_is_stored_in_processed(h: Harness) -> None:
    data = b"0123456789 abcdef"
    eid = h.submit("test-reverse", data)

    report = h.run(eid)

    assert report.outcome == "completed"
    completed = h.last(eid)
    assert isinstance(completed, Completed) and completed.result is None
    ref = completed.output
    assert ref is not None
    assert (ref.container, ref.name, ref.content_type) == (
        "processed",
        f"{eid}/reversed.txt",
        "text/plain",
    )
    assert h.blob_bytes("processed", ref.name) == data[::-1]
    assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data[::-1]).hexdigest())
    assert h.service.load(eid).state.output == ref


def test_a_text_of_64_kib_is_still_inline(h: Harness) -> None:
    eid = h.submit("test-repeat", params={"size": MAX_INLINE_RESULT})

    assert h.run(eid).outcome == "completed"

    completed = h.last(eid)
    assert isinstance(completed, Completed)
    assert completed.result == "x" * MAX_INLINE_RESULT and completed.output is None


def test_a_text_over_64_kib_is_stored_as_a_file(h: Harness) -> None:
    size = MAX_INLINE_RESULT + 1
    eid = h.submit("test-repeat", params={"size": size})

    assert h.run(eid).outcome == "completed"

    completed = h.last(eid)
    assert isinstance(completed, Completed) and completed.result is None
    ref = completed.output
    assert ref is not None and ref.container == "processed"
    assert ref.name.startswith(f"{eid}/")
    assert ref.content_type.startswith("text/plain")
    assert h.blob_bytes("processed", ref.name) == b"x" * size
    assert ref.size == size


# -- progress -------------------------------------------------------------------------------


def test_progress_reports_become_progress_events(h: Harness) -> None:
    eid = h.submit("test-steps", params={"steps": 4})

    assert h.run(eid).outcome == "completed"

    progress = [e for e in h.events(eid) if isinstance(e, Progress)]
    assert [(p.percent, p.message) for p in progress] == [
        (25.0, "step 1 of 4"),
        (50.0, "step 2 of 4"),
        (75.0, "step 3 of 4"),
        (100.0, "step 4 of 4"),
    ]
    assert h.names(eid)[-1] == "Completed"


def test_frequent_progress_reports_are_throttled(h: Harness) -> None:
    eid = h.submit("test-steps", params={"steps": 100})

    assert h.runner(progress_interval=10.0).run(eid).outcome == "completed"

    names = h.names(eid)
    assert names.count("Progress") <= 1
    assert names[-1] == "Completed"


# -- failures -------------------------------------------------------------------------------


def test_an_unknown_tool_in_the_stream_fails_for_good(h: Harness) -> None:
    eid = uuid.uuid4()
    h.service.handle(eid, Submit(eid, "no-such-tool", "data", "1.0.0", "async", "t"))

    report = h.run(eid)

    assert (report.outcome, report.code, report.retryable) == ("failed", "unknown_tool", False)
    assert h.names(eid) == ["Submitted", "Processing", "Failed"]
    failed = h.last(eid)
    assert isinstance(failed, Failed)
    assert (failed.code, failed.retryable) == ("unknown_tool", False)
    assert "no-such-tool" in failed.message


def test_params_the_tool_refuses_fail_the_execution(h: Harness) -> None:
    eid = uuid.uuid4()
    h.service.handle(
        eid,
        Submit(eid, "test-repeat", "data", "1.0.0", "async", "t", params={"size": "lots"}),
    )

    report = h.run(eid)

    assert (report.outcome, report.code, report.retryable) == ("failed", "invalid_params", False)
    failed = h.last(eid)
    assert isinstance(failed, Failed)
    assert failed.code == "invalid_params" and "size" in failed.message


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "message"),
    [
        ("invalid_input", "invalid_input", False, "this is not a spreadsheet"),
        ("transient", "transient_error", True, "the converter is busy"),
        ("crash", "tool_crashed", False, "RuntimeError: disk on fire"),
        ("no_output", "no_output", False, "without producing an output"),
    ],
)
def test_a_failing_tool_fails_with_a_stable_code(
    h: Harness, fault: str, code: str, retryable: bool, message: str
) -> None:
    eid = h.submit("test-faulty", params={"fault": fault})

    report = h.run(eid)

    assert (report.outcome, report.code, report.retryable) == ("failed", code, retryable)
    assert h.names(eid) == ["Submitted", "Processing", "Failed"]
    failed = h.last(eid)
    assert isinstance(failed, Failed)
    assert (failed.code, failed.retryable, failed.attempt) == (code, retryable, 1)
    assert message in failed.message
    assert h.service.load(eid).state.error.code == code  # type: ignore[union-attr]


def test_a_missing_input_blob_fails_for_good(h: Harness) -> None:
    eid = h.submit("test-shout", b"hello")
    upload = h.service.load(eid).state.upload
    assert upload is not None
    assert h.blobs.delete(upload.container, upload.name)

    report = h.run(eid)

    assert (report.outcome, report.code, report.retryable) == ("failed", "blob_not_found", False)
    failed = h.last(eid)
    assert isinstance(failed, Failed)
    assert (failed.code, failed.retryable) == ("blob_not_found", False)
    assert upload.name in failed.message


# -- who runs what --------------------------------------------------------------------------


def test_running_an_execution_twice_runs_it_once(h: Harness) -> None:
    eid = h.submit("test-shout", b"once")

    first, second = h.run(eid), h.run(eid)

    assert (first.outcome, second.outcome) == ("completed", "skipped")
    names = h.names(eid)
    assert (names.count("Processing"), names.count("Completed")) == (1, 1)


def test_four_workers_at_once_run_an_execution_once(hb: Harness) -> None:
    eid = hb.submit("test-shout", b"race")
    runners = [hb.runner(worker_id=f"w{n}") for n in range(4)]
    barrier = threading.Barrier(len(runners))
    outcomes: list[str] = []

    def work(runner: ToolRunner) -> None:
        barrier.wait(timeout=10)
        outcomes.append(runner.run(eid).outcome)

    threads = [in_background(lambda r=r: work(r)) for r in runners]
    for thread, errors in threads:
        thread.join(timeout=30)
        assert not thread.is_alive() and errors == []

    assert Counter(outcomes) == {"completed": 1, "skipped": 3}
    names = hb.names(eid)
    assert (names.count("Processing"), names.count("Completed")) == (1, 1)
    assert names[-1] == "Completed"


def test_async_only_leaves_a_sync_execution_to_its_request(h: Harness) -> None:
    eid = h.submit("test-sync-echo")

    report = h.run(eid, async_only=True)

    assert report.outcome == "skipped"
    assert h.names(eid) == ["Submitted"]
    assert h.run(eid).outcome == "completed"  # the request's own run still takes it


# -- cancelled or timed out while running ---------------------------------------------------


def test_a_cancel_while_running_stops_the_tool(hb: Harness, registry: ToolRegistry) -> None:
    tool = registry.get("test-cancellable")
    assert isinstance(tool, Cancellable)
    eid = hb.submit("test-cancellable")

    def cancel() -> None:
        wait_until(lambda: hb.status(eid) is Status.PROCESSING)
        hb.service.handle(eid, Cancel(reason="user"))

    thread, errors = in_background(cancel)
    started = time.monotonic()
    report = hb.run(eid)
    thread.join(timeout=10)

    assert errors == []
    assert report.outcome == "abandoned"
    assert time.monotonic() - started < 5  # stopped at a check, not after its 10 s of work
    names = hb.names(eid)
    assert names[-1] == "Cancelled" and "Completed" not in names
    assert hb.service.load(eid).state.cancel_reason == "user"
    [temp_dir] = tool.temp_dirs
    assert not temp_dir.exists()


def test_a_timeout_while_running_drops_the_late_output(hb: Harness, registry: ToolRegistry) -> None:
    tool = registry.get("test-slow-file")
    assert isinstance(tool, SlowFile)
    eid = hb.submit("test-slow-file")

    def time_out() -> None:
        try:
            wait_until(lambda: hb.status(eid) is Status.PROCESSING)
            hb.service.handle(eid, TimeOut(now=datetime(2999, 1, 1, tzinfo=UTC)))
        finally:
            tool.release.set()

    thread, errors = in_background(time_out)
    report = hb.run(eid)
    thread.join(timeout=10)

    assert errors == []
    assert report.outcome == "abandoned"
    names = hb.names(eid)
    assert "Completed" not in names
    failed = hb.last(eid)
    assert isinstance(failed, Failed) and failed.code == "timeout"
    assert list(hb.blobs.list("processed", prefix=f"{eid}/")) == []


# -- known bugs -----------------------------------------------------------------------------


class BadCode(BaseTool):
    """Raises a ToolError whose code the Failed event refuses (not snake_case)."""

    slug = "test-bad-code"
    name = "Bad code"
    category = "data"
    mode = "async"
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        raise ToolError("cannot do it", code="Not-A-Code")


class BadOutputParams(BaseModel):
    problem: Literal["missing_file", "unsafe_name"]


class BadOutput(BaseTool):
    """Hands over an output the runner cannot store: a file never written, or a name with ``..``."""

    slug = "test-bad-output"
    name = "Bad output"
    category = "data"
    mode = "async"
    Params = BadOutputParams

    def run(self, ctx: ToolContext) -> None:
        if ctx.params.problem == "missing_file":  # type: ignore[attr-defined]
            ctx.output.file(ctx.temp_dir / "never-written.bin", "out.bin", "text/plain")
        else:
            ctx.output.bytes(b"data", "../escape.bin", "application/octet-stream")


def test_a_tool_error_with_a_malformed_code_still_fails_the_execution(
    h: Harness, registry: ToolRegistry
) -> None:
    registry.register(BadCode)
    eid = h.submit("test-bad-code")

    report = h.run(eid)

    assert report.outcome == "failed"
    assert h.status(eid) is Status.FAILED


@pytest.mark.parametrize("problem", ["missing_file", "unsafe_name"])
def test_an_output_the_runner_cannot_store_fails_the_execution(
    h: Harness, registry: ToolRegistry, problem: str
) -> None:
    registry.register(BadOutput)
    eid = h.submit("test-bad-output", params={"problem": problem})

    report = h.run(eid)

    assert report.outcome == "failed"
    assert h.status(eid) is Status.FAILED
    assert list(h.blobs.list("processed")) == []


def test_an_attempts_deadline_is_its_tools_own_timeout(h: Harness) -> None:
    eid = h.submit("test-shout", b"hi")  # Shout keeps the default of 5 minutes

    h.run(eid)

    history = h.service.history(eid)
    processing = next(e for e in history if e.type.endswith(".Processing"))
    deadline = datetime.fromisoformat(processing.data["deadline"])
    assert deadline - processing.time == pytest.approx(Shout.timeout, abs=timedelta(seconds=1))
    assert discover().get("video-rotate").timeout == timedelta(minutes=30)
