"""The tool runner: carries one execution through an attempt, from Start to Completed or Failed.

It is what a Function (or a request, for a sync tool) calls. It acts on the execution's state,
not on the message that woke it, so a duplicate or late delivery finds nothing to do: the decider
refuses a second ``Start`` and the runner reports ``skipped``. It runs the tool over the uploaded
blob, stores the output in ``processed`` and records ``Completed``, or ``Failed`` with the
error's stable code and whether another attempt could help.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import ValidationError

from events.catalog import BlobRef
from events.errors import validation_summary
from services.blobs.store import BlobError, BlobStore
from services.executions.commands import Command, Complete, Fail, ReportProgress, Start
from services.executions.decider import STARTABLE, DomainError, Status
from services.executions.service import DEFAULT_TIMEOUT, Execution, ExecutionService, Trace
from services.tools.base import (
    MAX_INLINE_RESULT,
    BaseTool,
    InputFile,
    OutputSink,
    ScratchDir,
    ToolCancelled,
    ToolContext,
    ToolError,
)
from services.tools.registry import ToolRegistry, UnknownTool

log = logging.getLogger(__name__)

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # what a Failed event's code may look like

RunOutcome = Literal["completed", "failed", "skipped", "abandoned"]


@dataclass(frozen=True, slots=True)
class RunReport:
    execution_id: UUID
    outcome: RunOutcome
    detail: str = ""
    code: str | None = None  # the failure code when failed
    retryable: bool = False
    attempt: int = 0
    execution: Execution | None = None  # as the attempt left it (None: not known here)


class ToolRunner:
    def __init__(
        self,
        service: ExecutionService,
        blobs: BlobStore,
        registry: ToolRegistry,
        *,
        worker_id: str,
        progress_interval: float = 0.25,
        cancel_check_interval: float = 0.5,
        temp_root: Path | None = None,
    ) -> None:
        self.service = service
        self.blobs = blobs
        self.registry = registry
        self.worker_id = worker_id
        self.progress_interval = progress_interval
        self.cancel_check_interval = cancel_check_interval
        self.temp_root = temp_root

    def run(
        self,
        target: UUID | Execution,
        trace: Trace | None = None,
        *,
        tool: BaseTool | None = None,
        async_only: bool = False,
        started_here: bool = False,
    ) -> RunReport:
        """Take the execution's next attempt if it is waiting for one; otherwise do nothing.

        ``target`` is an execution id, or the execution as the caller holds it (no read then);
        ``tool`` spares the registry lookup when the caller has it. ``async_only`` leaves sync
        executions alone (their request runs them inline). ``started_here``: the caller
        recorded the attempt as started by this runner's worker id (in the submit's own commit);
        the runner runs that attempt instead of taking a new one.
        """
        trace = trace or Trace()
        known = self.service.load(target) if isinstance(target, UUID) else target
        execution_id, state = known.id, known.state
        if started_here:
            if state.status is not Status.PROCESSING or state.worker_id != self.worker_id:
                return RunReport(execution_id, "skipped", f"the execution is {state.status.value}")
        elif async_only and state.mode == "sync":
            return RunReport(execution_id, "skipped", "a sync execution runs in its request")
        elif state.status not in STARTABLE:
            return RunReport(execution_id, "skipped", f"the execution is {state.status.value}")
        elif state.input is not None and state.upload is None:
            return RunReport(execution_id, "skipped", "the input file is not uploaded yet")
        if tool is None:
            try:
                tool = self.registry.get(state.tool)
            except UnknownTool:
                tool = None
        if not started_here:
            timeout = tool.timeout if tool else DEFAULT_TIMEOUT
            start = Start(worker_id=self.worker_id, now=self.service.clock(), timeout=timeout)
            try:
                known = self.service.handle(execution_id, start, trace, known=known).execution
            except DomainError as exc:  # another worker took it first, or it was cancelled
                return RunReport(execution_id, "skipped", str(exc))
        attempt = _Attempt(self, known, trace)
        if tool is None:
            return attempt.fail("unknown_tool", f"there is no tool {state.tool!r}", False)
        return attempt.execute(tool)


class _Attempt:
    """One attempt of one execution: the tool run with its progress, cancellation and output."""

    def __init__(self, runner: ToolRunner, started: Execution, trace: Trace) -> None:
        self.runner = runner
        self.service = runner.service
        self.execution_id = started.id
        self.state = started.state
        # The execution as this attempt last wrote or read it: the next command is decided on
        # it without reading the stream again (a stale one costs a re-read, never a wrong event).
        self.known = started
        self.trace = trace
        self._last_progress = 0.0
        self._last_check = time.monotonic()
        self._stopped = False

    def execute(self, tool: BaseTool) -> RunReport:
        try:
            params = tool.Params.model_validate(self.state.params or {})
        except ValidationError as exc:
            return self.fail("invalid_params", validation_summary(exc, root="params"), False)
        started = time.monotonic()
        scratch = ScratchDir(self.runner.temp_root, prefix=f"mt-{self.execution_id}-")
        try:
            ctx = ToolContext(
                params=params,
                input=self._input(scratch),
                scratch=scratch,
                output=OutputSink(scratch),
                report_progress=self.progress,
                is_cancelled=self.cancelled,
            )
            try:
                tool.run(ctx)
            except ToolCancelled:
                return RunReport(
                    self.execution_id, "abandoned", "cancelled while running", attempt=self.attempt
                )
            except ToolError as exc:
                code = exc.code if _CODE.match(exc.code or "") else "tool_error"
                return self.fail(code, str(exc) or exc.code, exc.retryable)
            except BlobError as exc:
                return self.fail(exc.code, str(exc), exc.retryable)
            except Exception as exc:  # a bug in the tool: final, with enough to find it
                log.exception("tool %s crashed on %s", tool.slug, self.execution_id)
                return self.fail("tool_crashed", f"{type(exc).__name__}: {exc}", False)
            duration_ms = int((time.monotonic() - started) * 1000)
            try:
                return self.complete(ctx.output, duration_ms)
            except BlobError as exc:
                return self.fail(exc.code, f"storing the output failed: {exc}", exc.retryable)
            except Exception as exc:  # an output file that is missing or badly named: a tool bug
                log.exception("tool %s left an output that cannot be stored", tool.slug)
                return self.fail("tool_crashed", f"{type(exc).__name__}: {exc}", False)
        finally:
            scratch.cleanup()

    @property
    def attempt(self) -> int:
        return self.state.attempt

    def _input(self, temp_dir: ScratchDir) -> InputFile | None:
        declared, blob = self.state.input, self.state.upload
        if declared is None or blob is None:
            return None
        blobs = self.runner.blobs
        return InputFile(
            filename=declared.filename,
            size=blob.size,
            content_type=blob.content_type,
            _chunks=lambda: blobs.get(blob.container, blob.name),
            _temp_dir=temp_dir,
        )

    def _handle(self, command: Command) -> None:
        outcome = self.service.handle(self.execution_id, command, self.trace, known=self.known)
        self.known = outcome.execution

    def progress(self, percent: float, message: str) -> None:
        now = time.monotonic()
        if self._stopped or now - self._last_progress < self.runner.progress_interval:
            return
        self._last_progress = now
        try:
            self._handle(ReportProgress(percent=percent, message=message[:500]))
        except DomainError:  # cancelled or timed out meanwhile: the next check stops the tool
            self._stopped = True

    def cancelled(self) -> bool:
        """True once this attempt no longer owns the execution (cancelled, timed out, retried)."""
        if self._stopped:
            return True
        now = time.monotonic()
        if now - self._last_check < self.runner.cancel_check_interval:
            return False
        self._last_check = now
        self.known = self.service.load(self.execution_id)
        current = self.known.state
        mine = current.status is Status.PROCESSING and current.attempt == self.attempt
        self._stopped = not mine
        return self._stopped

    def complete(self, sink: OutputSink, duration_ms: int) -> RunReport:
        output = sink.result
        if output is None:
            return self.fail("no_output", "the tool finished without producing an output", False)
        ref: BlobRef | None = None
        text = output.text
        # Storage errors propagate: execute() turns them into Failed.
        if text is not None and len(text) > MAX_INLINE_RESULT:  # Completed.result's bound
            ref = self.runner.blobs.put(
                "processed",
                f"{self.execution_id}/result.txt",
                [text.encode()],
                content_type="text/plain; charset=utf-8",
            )
            text = None
        elif output.path is not None:
            with output.path.open("rb") as f:
                ref = self.runner.blobs.put(
                    "processed",
                    f"{self.execution_id}/{output.filename or output.path.name}",
                    f,
                    content_type=output.content_type or "application/octet-stream",
                )
        try:
            self._handle(Complete(duration_ms=duration_ms, output=ref, result=text))
        except DomainError as exc:  # cancelled or timed out while we worked: drop the output
            if ref is not None:
                self.runner.blobs.delete(ref.container, ref.name)
            return RunReport(self.execution_id, "abandoned", str(exc), attempt=self.attempt)
        return self._report("completed")

    def fail(self, code: str, message: str, retryable: bool) -> RunReport:
        try:
            self._handle(Fail(code=code, message=message[:2000], retryable=retryable))
        except DomainError as exc:
            return RunReport(self.execution_id, "abandoned", str(exc), attempt=self.attempt)
        return self._report("failed", message, code, retryable)

    def _report(
        self, outcome: RunOutcome, detail: str = "", code: str | None = None, retry: bool = False
    ) -> RunReport:
        return RunReport(self.execution_id, outcome, detail, code, retry, self.attempt, self.known)
