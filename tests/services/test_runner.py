"""The tool runner on a real event store and a real local blob store, with tools defined here.

Each test submits an execution the way a request does (``submit``), runs it with
``ToolRunner.run`` and reads the outcome back from the execution's stream: what a user sees is
the events (Completed with its result or blob, Failed with its code) and the blobs left behind.
The tools run in the real worker processes of the session's pool (``tool_pool``), under the
limits they declare; races (duplicate deliveries, a cancel or a timeout while a tool runs, a
worker killed mid-run) use real threads and real signals.
"""

from __future__ import annotations

import hashlib
import os
import signal
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

from events.catalog import Completed, EventPayload, Failed, Processing, Progress
from events.following import Backoff
from events.opening import open_store
from events.store import EventStore
from services.blobs.local import LocalBlobStore
from services.executions.actions import ExecutionActions, Upload
from services.executions.commands import Cancel, Submit, TimeOut
from services.executions.decider import Status
from services.executions.runner import MAX_INLINE_RESULT, RunReport, ToolRunner
from services.executions.service import ExecutionService
from services.executions.sweeper import RETRY_BACKOFF
from services.tools.base import (
    MB,
    BaseTool,
    InvalidInput,
    OutputKind,
    ToolContext,
    ToolError,
    TransientToolError,
)
from services.tools.registry import ToolRegistry, discover
from services.workers.pool import WorkerPool

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
    pause: float = 0.0  # seconds between steps


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
            if i > 1:
                time.sleep(ctx.params.pause)  # type: ignore[attr-defined]
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


class CancellableParams(BaseModel):
    seconds: float = 10.0


class Cancellable(BaseTool):
    """Works for ``seconds`` without ever checking for cancellation, after saying (as its first
    progress message) where its scratch directory is and leaving a file there."""

    slug = "test-cancellable"
    name = "Cancellable"
    category = "data"
    mode = "async"
    Params = CancellableParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        (ctx.temp_dir / "scratch.bin").write_bytes(b"half done")
        ctx.progress(1, str(ctx.temp_dir))
        time.sleep(ctx.params.seconds)  # type: ignore[attr-defined]
        ctx.output.text("never cancelled")


class SlowFileParams(BaseModel):
    release: str  # the tool waits until this file exists


class SlowFile(BaseTool):
    """Waits until the test creates its ``release`` file, then hands over a file (it never
    checks for cancel)."""

    slug = "test-slow-file"
    name = "Slow file"
    category = "data"
    mode = "async"
    Params = SlowFileParams

    def run(self, ctx: ToolContext) -> None:
        release = Path(ctx.params.release)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not release.exists():
            assert time.monotonic() < deadline, "the test never released the tool"
            time.sleep(0.005)
        ctx.output.bytes(b"too late", "late.bin", "application/octet-stream")


class NapParams(BaseModel):
    seconds: float = 30.0


class Nap(BaseTool):
    """Says its process id (its first progress message), then sleeps past its 1 s timeout."""

    slug = "test-nap"
    name = "Nap"
    category = "data"
    mode = "async"
    timeout = timedelta(seconds=1)
    Params = NapParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.progress(1, str(os.getpid()))
        time.sleep(ctx.params.seconds)  # type: ignore[attr-defined]
        ctx.output.text("woke up")


class HogParams(BaseModel):
    megabytes: int


class Hog(BaseTool):
    """Holds a buffer of ``megabytes`` in memory; it may add 200 MB to its worker."""

    slug = "test-hog"
    name = "Hog"
    category = "data"
    mode = "async"
    max_memory = 200 * MB
    Params = HogParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        buffer = bytearray(ctx.params.megabytes * MB)  # type: ignore[attr-defined]
        buffer[::4096] = b"x" * len(buffer[::4096])  # touched: resident, not just reserved
        ctx.output.text(f"held {len(buffer)} bytes")


class BigFileParams(BaseModel):
    kilobytes: int


class BigFile(BaseTool):
    """Writes ``kilobytes`` to a scratch file in 64 KB chunks and hands it over; whatever
    happens, its one progress message says how large the file got."""

    slug = "test-big-file"
    name = "Big file"
    category = "data"
    mode = "async"
    max_output = 1 * MB

    Params = BigFileParams

    def run(self, ctx: ToolContext) -> None:
        path = ctx.temp_dir / "big.bin"
        chunk = b"z" * (64 * 1024)
        try:
            with path.open("wb") as f:
                for _ in range(ctx.params.kilobytes // 64):  # type: ignore[attr-defined]
                    f.write(chunk)
        finally:
            ctx.progress(50, str(path.stat().st_size if path.exists() else 0))
        ctx.output.file(path, "big.bin", "application/octet-stream")


class TightRepeat(Repeat):
    """Repeat, with a text result of at most 4096 characters."""

    slug = "test-tight-repeat"
    name = "Tight repeat"
    max_output = 4096


class LitterParams(BaseModel):
    files: int


class Litter(BaseTool):
    """Writes ``files`` scratch files of 512 KB (each under its 1 MB max_output; together maybe
    past its 2 MB of scratch), then lingers a second before answering."""

    slug = "test-litter"
    name = "Litter"
    category = "data"
    mode = "async"
    max_output = 1 * MB
    max_scratch = 2 * MB
    Params = LitterParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        files = ctx.params.files  # type: ignore[attr-defined]
        for n in range(files):
            (ctx.temp_dir / f"part-{n}.bin").write_bytes(b"l" * (512 * 1024))
            time.sleep(0.05)
        time.sleep(1.0)
        ctx.output.text(f"wrote {files} files")


class Spin(BaseTool):
    """Burns CPU for up to 30 s; its CPU limit is 1 s, its wall-clock limit a minute."""

    slug = "test-spin"
    name = "Spin"
    category = "data"
    mode = "async"
    timeout = timedelta(minutes=1)
    cpu_limit = timedelta(seconds=1)
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        deadline = time.monotonic() + 30
        spins = 0
        while time.monotonic() < deadline:
            spins += 1
        ctx.output.text(f"spun {spins} times")


class FragileParams(BaseModel):
    marker: str  # exists once a first attempt has begun


class Fragile(BaseTool):
    """On its first attempt, says its process id and waits (for the test to kill its worker);
    on any later attempt, answers at once."""

    slug = "test-fragile"
    name = "Fragile"
    category = "data"
    mode = "async"
    Params = FragileParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        marker = Path(ctx.params.marker)  # type: ignore[attr-defined]
        if marker.exists():
            ctx.output.text("survived")
            return
        marker.write_text(str(os.getpid()))
        ctx.progress(1, str(os.getpid()))
        time.sleep(10)
        ctx.output.text("never killed")


class FaultyOnce(Faulty):
    """Faulty, allowed a single attempt."""

    slug = "test-faulty-once"
    name = "Faulty once"
    max_attempts = 1


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
    tools = [Shout, Reverse, Repeat, Steps, Faulty, FaultyOnce, SyncEcho, Cancellable, SlowFile]
    tools += [Nap, Hog, BigFile, TightRepeat, Litter, Spin, Fragile]
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
        self,
        store: EventStore,
        blobs: LocalBlobStore,
        registry: ToolRegistry,
        work_dir: Path,
        pool: WorkerPool,
    ) -> None:
        self.store = store
        self.service = ExecutionService(store)
        self.blobs = blobs
        self.registry = registry
        self.work_dir = work_dir
        self.pool = pool

    def runner(
        self,
        progress_interval: float = 0.0,
        cancel_check_interval: float = 0.0,
        retry_backoff: Backoff = RETRY_BACKOFF,
    ) -> ToolRunner:
        return ToolRunner(
            self.service,
            self.blobs,
            self.registry,
            pool=self.pool,
            retry_backoff=retry_backoff,
            progress_interval=progress_interval,
            cancel_check_interval=cancel_check_interval,
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

    def progress_messages(self, eid: uuid.UUID) -> list[str]:
        return [e.message for e in self.events(eid) if isinstance(e, Progress)]

    def first_progress(self, eid: uuid.UUID, timeout: float = 10.0) -> str:
        """The first progress message of the run going on (the tools here report a path or
        their process id in it)."""
        wait_until(lambda: self.progress_messages(eid) != [], timeout)
        return self.progress_messages(eid)[0]


@pytest.fixture
def h(
    sqlite_store: EventStore,
    blobs: LocalBlobStore,
    registry: ToolRegistry,
    work_dir: Path,
    tool_pool: WorkerPool,
) -> Iterator[Harness]:
    harness = Harness(sqlite_store, blobs, registry, work_dir, tool_pool)
    yield harness
    assert list(work_dir.iterdir()) == [], "a run left its temp dir behind"


@pytest.fixture
def hb(
    store: EventStore,
    blobs: LocalBlobStore,
    registry: ToolRegistry,
    work_dir: Path,
    tool_pool: WorkerPool,
) -> Iterator[Harness]:
    """The same harness on both event store backends (SQLite and PostgreSQL)."""
    harness = Harness(store, blobs, registry, work_dir, tool_pool)
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
    # A worker sends at most one progress message every 0.1 s: these steps are 0.15 s apart.
    eid = h.submit("test-steps", params={"steps": 4, "pause": 0.15})

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
    runners = [hb.runner() for _ in range(4)]  # more runners than the pool has workers
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


def test_a_cancel_while_running_stops_the_tool(hb: Harness) -> None:
    eid = hb.submit("test-cancellable")

    def cancel() -> None:
        hb.first_progress(eid)  # the tool is running (and has written a scratch file)
        hb.service.handle(eid, Cancel(reason="user"))

    thread, errors = in_background(cancel)
    started = time.monotonic()
    report = hb.run(eid)
    thread.join(timeout=10)

    assert errors == []
    assert (report.outcome, report.detail) == (
        "abandoned",
        "stopped: the execution is cancelled now",
    )
    assert time.monotonic() - started < 5  # its worker was stopped, not left to its 10 s
    names = hb.names(eid)
    assert names[-1] == "Cancelled" and "Completed" not in names
    assert hb.service.load(eid).state.cancel_reason == "user"
    [scratch] = hb.progress_messages(eid)
    assert Path(scratch).parent == hb.work_dir and not Path(scratch).exists()


@pytest.mark.parametrize(
    "cancel_check_interval",
    [0.0, 60.0],
    ids=["stopped-at-the-next-check", "finished-unchecked-output-dropped"],
)
def test_a_timeout_while_running_drops_the_late_output(
    hb: Harness, tmp_path: Path, cancel_check_interval: float
) -> None:
    """The sweeper times the attempt out while its tool runs: the runner either notices at its
    next check and stops the worker, or (checking rarely) finds out when it records the output,
    and removes the stored file again. Either way: no Completed, no output left."""
    release = tmp_path / "release"
    eid = hb.submit("test-slow-file", params={"release": str(release)})
    stopped_at_check = cancel_check_interval == 0.0

    def time_out() -> None:
        try:
            wait_until(lambda: hb.status(eid) is Status.PROCESSING)
            hb.service.handle(eid, TimeOut(now=datetime(2999, 1, 1, tzinfo=UTC)))
        finally:
            if not stopped_at_check:
                release.touch()  # the tool finishes after its attempt was timed out

    thread, errors = in_background(time_out)
    started = time.monotonic()
    report = hb.runner(cancel_check_interval=cancel_check_interval).run(eid)
    thread.join(timeout=10)

    assert errors == []
    assert report.outcome == "abandoned"
    if stopped_at_check:
        assert report.detail == "stopped: the execution is failed now"
        assert time.monotonic() - started < 5  # the tool would have waited 10 s
    names = hb.names(eid)
    assert "Completed" not in names
    failed = hb.last(eid)
    assert isinstance(failed, Failed) and failed.code == "timeout"
    assert list(hb.blobs.list("processed")) == []


# -- limits: the tool runs in a worker process, under the limits it declares -----------------


def test_a_tool_past_its_timeout_is_stopped_with_time_limit(h: Harness) -> None:
    eid = h.submit("test-nap")  # sleeps 30 s; its timeout is 1 s

    started = time.monotonic()
    report = h.run(eid)
    elapsed = time.monotonic() - started

    assert (report.outcome, report.code, report.retryable) == ("failed", "time_limit", False)
    assert 0.9 < elapsed < Nap.timeout.total_seconds() + 1.5
    assert h.names(eid) == ["Submitted", "Processing", "Progress", "Failed"]
    failed = h.last(eid)
    assert isinstance(failed, Failed)
    assert (failed.code, failed.retryable, failed.next_attempt_at) == ("time_limit", False, None)
    assert "1 s" in failed.message
    [pid] = h.progress_messages(eid)
    assert int(pid) != os.getpid()  # the tool ran in a worker process, not in this one
    assert int(pid) not in h.pool.pids()  # and that worker was stopped, not left asleep
    # The pool still works: the next run gets a worker.
    after = h.submit("test-shout", b"still here")
    assert h.run(after).outcome == "completed"
    assert h.service.load(after).state.result == "STILL HERE"


def test_a_tool_within_its_timeout_completes(h: Harness) -> None:
    eid = h.submit("test-nap", params={"seconds": 0.2})

    assert h.run(eid).outcome == "completed"
    assert h.service.load(eid).state.result == "woke up"


@pytest.mark.parametrize(
    ("megabytes", "outcome", "code"),
    [(50, "completed", None), (600, "failed", "memory_limit")],
)
def test_a_tool_past_its_memory_limit_fails_with_memory_limit(
    h: Harness, megabytes: int, outcome: str, code: str | None
) -> None:
    eid = h.submit("test-hog", params={"megabytes": megabytes})  # may add 200 MB

    report = h.run(eid)

    assert (report.outcome, report.code, report.retryable) == (outcome, code, False)
    last = h.last(eid)
    if code is None:
        assert isinstance(last, Completed) and last.result == f"held {megabytes * MB} bytes"
    else:
        assert isinstance(last, Failed)
        assert (last.code, last.retryable, last.next_attempt_at) == (code, False, None)
        assert "200 MB" in last.message
    after = h.submit("test-shout", b"next")  # the pool gives the next run a working worker
    assert h.run(after).outcome == "completed"


@pytest.mark.parametrize(
    ("kilobytes", "outcome", "code"),
    [(512, "completed", None), (5 * 1024, "failed", "output_too_large")],
)
def test_a_file_past_max_output_is_stopped_while_it_is_written(
    h: Harness, kilobytes: int, outcome: str, code: str | None
) -> None:
    eid = h.submit("test-big-file", params={"kilobytes": kilobytes})  # max_output: 1 MB

    report = h.run(eid)

    assert (report.outcome, report.code, report.retryable) == (outcome, code, False)
    [written] = h.progress_messages(eid)  # how large the tool's file got
    last = h.last(eid)
    if code is None:
        assert int(written) == kilobytes * 1024
        assert isinstance(last, Completed) and last.output is not None
        assert last.output.size == kilobytes * 1024
    else:
        assert int(written) <= 1 * MB  # the write failed at the limit, not after 5 MB
        assert isinstance(last, Failed)
        assert (last.code, last.retryable) == ("output_too_large", False)
        assert "1 MB" in last.message
        assert list(h.blobs.list("processed")) == []


@pytest.mark.parametrize(
    ("size", "outcome", "code"),
    [(4096, "completed", None), (4097, "failed", "output_too_large")],
)
def test_a_text_past_max_output_fails_with_output_too_large(
    h: Harness, size: int, outcome: str, code: str | None
) -> None:
    eid = h.submit("test-tight-repeat", params={"size": size})  # max_output: 4096

    report = h.run(eid)

    assert (report.outcome, report.code) == (outcome, code)
    last = h.last(eid)
    if code is None:
        assert isinstance(last, Completed) and last.result == "x" * size
    else:
        assert isinstance(last, Failed) and (last.code, last.retryable) == (code, False)
        assert list(h.blobs.list("processed")) == []


@pytest.mark.parametrize(
    ("files", "outcome", "code"),
    [(2, "completed", None), (8, "failed", "disk_limit")],
)
def test_scratch_files_past_max_scratch_fail_with_disk_limit(
    h: Harness, files: int, outcome: str, code: str | None
) -> None:
    eid = h.submit("test-litter", params={"files": files})  # 512 KB each; max_scratch 2 MB

    report = h.run(eid)

    assert (report.outcome, report.code) == (outcome, code)
    last = h.last(eid)
    if code is None:
        assert isinstance(last, Completed) and last.result == f"wrote {files} files"
    else:
        assert isinstance(last, Failed) and (last.code, last.retryable) == (code, False)
        assert "2 MB" in last.message


def test_a_tool_past_its_cpu_limit_fails_with_time_limit(h: Harness) -> None:
    eid = h.submit("test-spin")  # 1 s of CPU, a minute of wall clock, spins for 30 s

    started = time.monotonic()
    report = h.run(eid)

    assert time.monotonic() - started < 8
    assert (report.outcome, report.code, report.retryable) == ("failed", "time_limit", False)
    failed = h.last(eid)
    assert isinstance(failed, Failed) and (failed.code, failed.retryable) == ("time_limit", False)
    assert "CPU" in failed.message
    after = h.submit("test-shout", b"next")
    assert h.run(after).outcome == "completed"


def test_a_worker_killed_mid_run_is_lost_and_the_run_starts_again_at_once(
    h: Harness, tmp_path: Path
) -> None:
    eid = h.submit("test-fragile", params={"marker": str(tmp_path / "began")})
    reports: list[RunReport] = []
    thread, errors = in_background(lambda: reports.append(h.run(eid)))

    pid = int(h.first_progress(eid))
    assert pid != os.getpid() and pid in h.pool.pids()  # one of the pool's workers
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)

    assert errors == [] and not thread.is_alive()
    [report] = reports
    assert (report.outcome, report.attempt) == ("completed", 2)
    assert h.service.load(eid).state.result == "survived"
    history = [(e, e.payload()) for e in h.service.history(eid)]
    shown = [p for _, p in history if not isinstance(p, Progress)]
    assert [p.name for p in shown] == [
        "Submitted",
        "Processing",
        "Failed",
        "Retried",
        "Processing",
        "Completed",
    ]
    first, failed, second = shown[1], shown[2], shown[4]
    assert isinstance(first, Processing) and isinstance(second, Processing)
    assert first.worker_id.endswith(f"/{pid}") and second.worker_id != first.worker_id
    assert second.attempt == 2
    assert isinstance(failed, Failed)
    assert (failed.code, failed.retryable, failed.attempt) == ("worker_lost", True, 1)
    assert "SIGKILL" in failed.message
    assert failed.max_attempts == Fragile.max_attempts
    failed_at = next(e.time for e, p in history if isinstance(p, Failed))
    assert failed.next_attempt_at is not None
    assert abs(failed.next_attempt_at - failed_at) < timedelta(seconds=1)  # at once


def test_a_retryable_failure_says_when_the_next_attempt_comes(h: Harness) -> None:
    eid = h.submit("test-faulty", params={"fault": "transient"})

    report = h.runner(retry_backoff=Backoff(first=7.0)).run(eid)

    assert (report.outcome, report.code, report.retryable) == ("failed", "transient_error", True)
    event = h.service.history(eid)[-1]
    failed = event.payload()
    assert isinstance(failed, Failed) and failed.retryable
    assert failed.max_attempts == Faulty.max_attempts == 3
    assert failed.next_attempt_at is not None
    wait = failed.next_attempt_at - event.time
    assert abs(wait - timedelta(seconds=7)) < timedelta(seconds=1)  # the runner's backoff


@pytest.mark.parametrize(
    ("tool", "fault"),
    [("test-faulty", "invalid_input"), ("test-faulty", "crash"), ("test-faulty-once", "transient")],
    ids=["final-error", "crash", "retryable-but-no-attempts-left"],
)
def test_a_failure_no_attempt_follows_names_no_next_attempt(
    h: Harness, tool: str, fault: str
) -> None:
    eid = h.submit(tool, params={"fault": fault})

    assert h.run(eid).outcome == "failed"

    failed = h.last(eid)
    assert isinstance(failed, Failed)
    assert failed.next_attempt_at is None
    assert failed.max_attempts == h.registry.get(tool).max_attempts


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


@pytest.mark.parametrize(
    ("tool", "timeout"),
    [
        ("test-shout", timedelta(minutes=5)),  # an async tool's default
        ("test-sync-echo", timedelta(seconds=10)),  # a sync tool's default
        ("test-nap", timedelta(seconds=1)),  # declared by the tool
    ],
)
def test_an_attempts_deadline_is_its_tools_own_timeout(
    h: Harness, tool: str, timeout: timedelta
) -> None:
    params = {"seconds": 0} if tool == "test-nap" else None
    eid = h.submit(tool, b"hi" if tool == "test-shout" else None, params)

    assert h.run(eid).outcome == "completed"

    history = h.service.history(eid)
    processing = next(e for e in history if e.type.endswith(".Processing"))
    deadline = datetime.fromisoformat(processing.data["deadline"])
    assert h.registry.get(tool).timeout == timeout
    assert deadline - processing.time == pytest.approx(timeout, abs=timedelta(milliseconds=500))
    assert discover().get("video-rotate").timeout == timedelta(minutes=30)
