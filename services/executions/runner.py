"""The tool runner: carries one execution through an attempt, from Start to Completed or Failed.

It is what a Function (or a request, for a sync tool) calls. It acts on the execution's state,
not on the message that woke it, so a duplicate or late delivery finds nothing to do: the decider
refuses a second ``Start`` and the runner reports ``skipped``. The tool's code never runs here:
the runner takes a worker from the pool (fairly, by owner), records ``Processing`` under that
worker's id and lease, copies the input into the run's scratch directory, and has the worker run
the tool under the tool's limits (``services.workers``). It records progress as it comes, stores
the output in ``processed`` and records ``Completed``, or ``Failed`` with the stable code and,
when another attempt will come by itself, when. A worker that dies under a run is not the run's
fault: the attempt fails with ``worker_lost`` and the next one starts at once, on a new worker.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import ValidationError

from events.catalog import BlobRef
from events.errors import validation_summary
from events.following import Backoff
from services.blobs.store import BlobError, BlobStore
from services.executions.commands import Command, Complete, Fail, ReportProgress, Retry, Start
from services.executions.decider import STARTABLE, WORKER_LOST_CODE, DomainError, Status
from services.executions.service import DEFAULT_TIMEOUT, Execution, ExecutionService, Trace
from services.executions.sweeper import RETRY_BACKOFF
from services.tools.base import MAX_INLINE_RESULT, BaseTool, Output, ScratchDir
from services.tools.registry import ToolRegistry, UnknownTool
from services.workers.child import Crashed, Done, InputSpec, Job, Refused
from services.workers.leases import DEFAULT_LEASE
from services.workers.limits import OUTPUT_TOO_LARGE, RETRYABLE, Limits, megabytes
from services.workers.pool import Lost, PoolClosed, Result, Slot, Stopped, WorkerPool

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
        pool: WorkerPool,
        lease_seconds: float | None = DEFAULT_LEASE,
        retry_backoff: Backoff = RETRY_BACKOFF,
        progress_interval: float = 0.25,
        cancel_check_interval: float = 0.5,
        temp_root: Path | None = None,
    ) -> None:
        self.service = service
        self.blobs = blobs
        self.registry = registry
        self.pool = pool
        self.lease_seconds = lease_seconds
        self.retry_backoff = retry_backoff
        self.progress_interval = progress_interval
        self.cancel_check_interval = cancel_check_interval
        self.temp_root = temp_root

    def reserve(self, owner: str, tool: BaseTool | None = None, *, sync: bool = True) -> Slot:
        """A worker for a run the caller is about to record as started (a sync submit): it
        waits its turn, or raises ``PoolBusy`` when too many requests wait already or the
        wait would take more than half the tool's time limit (its clock runs meanwhile)."""
        budget = tool.timeout.total_seconds() / 2 if tool is not None else None
        return self.pool.acquire(owner, sync=sync, budget=budget)

    def start(self, slot: Slot, tool: BaseTool | None, now: datetime | None = None) -> Start:
        """The ``Start`` of an attempt on ``slot``'s worker (``now``: when its clock starts)."""
        return Start(
            worker_id=slot.worker_id,
            now=now or self.service.clock(),
            timeout=tool.timeout if tool else DEFAULT_TIMEOUT,
            lease_seconds=self.lease_seconds,
        )

    def run(
        self,
        target: UUID | Execution,
        trace: Trace | None = None,
        *,
        tool: BaseTool | None = None,
        async_only: bool = False,
        slot: Slot | None = None,
    ) -> RunReport:
        """Take the execution's next attempt if it is waiting for one; otherwise do nothing.

        ``target`` is an execution id, or the execution as the caller holds it (no read then);
        ``tool`` spares the registry lookup when the caller has it. ``async_only`` leaves sync
        executions alone (their request runs them). ``slot``: the caller reserved this worker
        and recorded the attempt as started on it (in the submit's own commit); the runner
        runs that attempt instead of taking a new one, and releases the slot.
        """
        trace = trace or Trace()
        try:
            known = self.service.load(target) if isinstance(target, UUID) else target
            execution_id, state = known.id, known.state
            if slot is not None:
                if state.status is not Status.PROCESSING or state.worker_id != slot.worker_id:
                    return RunReport(execution_id, "skipped", f"the execution is {state.status}")
            elif async_only and state.mode == "sync":
                return RunReport(execution_id, "skipped", "a sync execution runs in its request")
            elif state.status not in STARTABLE:
                return RunReport(execution_id, "skipped", f"the execution is {state.status}")
            elif state.input is not None and state.upload is None:
                return RunReport(execution_id, "skipped", "the input file is not uploaded yet")
            if tool is None:
                try:
                    tool = self.registry.get(state.tool)
                except UnknownTool:
                    tool = None
            if slot is None:
                slot = self.pool.acquire(state.owner)  # PoolClosed: the delivery is retried
                try:
                    start = self.start(slot, tool)
                    known = self.service.handle(execution_id, start, trace, known=known).execution
                except DomainError as exc:  # another worker took it first, or it was cancelled
                    return RunReport(execution_id, "skipped", str(exc))
            while True:
                attempt = _Attempt(self, known, trace, tool)
                if tool is None:
                    return attempt.fail("unknown_tool", f"there is no tool {state.tool!r}", False)
                result = attempt.execute(slot)
                slot.release()
                slot = None
                if not isinstance(result, Lost):
                    return result
                # The worker died under the run: the next attempt starts at once, on a new one.
                known, slot = self._replace_lost(attempt, result, trace)
                if slot is None:
                    return attempt.report_lost(known, result)
        finally:
            if slot is not None:
                slot.release()

    def _replace_lost(
        self, attempt: _Attempt, lost: Lost, trace: Trace
    ) -> tuple[Execution, Slot | None]:
        """Record the lost attempt and, if the tool allows another, start it on a new worker in
        the same commit (no other worker can take it in between)."""
        state, tool = attempt.known.state, attempt.tool
        assert tool is not None
        commands: list[Command] = [attempt.failure(WORKER_LOST_CODE, lost.message, True)]
        retrying = state.attempt < tool.max_attempts
        slot = None
        if retrying:
            commands.append(Retry(max_attempts=tool.max_attempts))
            try:
                slot = self.pool.acquire(state.owner)
            except PoolClosed:  # shutting down: the Retried event brings another worker
                slot = None
            if slot is not None:
                commands.append(self.start(slot, tool))
        try:
            outcome = self.service.handle(
                attempt.execution_id, commands, trace, known=attempt.known
            )
        except DomainError:
            if slot is not None:
                slot.release()
            return self.service.load(attempt.execution_id), None
        log.warning(
            "%s: %s; attempt %d starts", attempt.execution_id, lost.message, state.attempt + 1
        )
        return outcome.execution, slot


class _Attempt:
    """One attempt of one execution: the tool run with its progress, cancellation and output."""

    def __init__(
        self, runner: ToolRunner, started: Execution, trace: Trace, tool: BaseTool | None
    ) -> None:
        self.runner = runner
        self.service = runner.service
        self.execution_id = started.id
        self.state = started.state
        self.tool = tool
        # The execution as this attempt last wrote or read it: the next command is decided on
        # it without reading the stream again (a stale one costs a re-read, never a wrong event).
        self.known = started
        self.trace = trace
        self._last_progress = 0.0
        self._last_check = time.monotonic()
        self._stopped = False

    @property
    def attempt(self) -> int:
        return self.state.attempt

    def execute(self, slot: Slot) -> RunReport | Lost:
        tool = self.tool
        assert tool is not None
        try:
            tool.Params.model_validate(self.state.params or {})
        except ValidationError as exc:
            return self.fail("invalid_params", validation_summary(exc, root="params"), False)
        limits = Limits.of(tool)
        started = time.monotonic()
        scratch = ScratchDir(self.runner.temp_root, prefix=f"mt-{self.execution_id}-")
        try:
            try:
                spec = self._input(scratch)
            except BlobError as exc:
                return self.fail(exc.code, f"reading the input failed: {exc}", exc.retryable)
            job = Job(tool, dict(self.state.params or {}), spec, str(scratch.location), limits)
            deadline = started + limits.time_s
            if self.state.deadline is not None:  # a sync run's clock started at its request
                left = (self.state.deadline - self.service.clock()).total_seconds()
                deadline = min(deadline, started + max(0.0, left))
            try:
                result = slot.run(
                    job, deadline=deadline, on_progress=self.progress, should_stop=self.cancelled
                )
            finally:
                slot.release()  # the worker is free for the next run while this one is stored
            duration_ms = int((time.monotonic() - started) * 1000)
            return self._settle(result, scratch, limits, duration_ms)
        finally:
            scratch.cleanup()

    def _settle(
        self, result: Result, scratch: ScratchDir, limits: Limits, duration_ms: int
    ) -> RunReport | Lost:
        tool = self.tool
        assert tool is not None
        match result:
            case Done(output=output):
                try:
                    return self.complete(output, scratch, limits, duration_ms)
                except BlobError as exc:
                    return self.fail(exc.code, f"storing the output failed: {exc}", exc.retryable)
                except ValueError as exc:  # a badly named output: a tool bug
                    return self.fail("tool_crashed", f"the output cannot be stored: {exc}", False)
            case Refused(code=code, message=message, retryable=retryable):
                code = code if _CODE.match(code or "") else "tool_error"
                return self.fail(code, message, RETRYABLE.get(code, retryable))
            case Crashed(message=message, traceback=trace):
                log.error("tool %s crashed on %s:\n%s", tool.slug, self.execution_id, trace)
                return self.fail("tool_crashed", message, False)
            case Stopped():
                return RunReport(
                    self.execution_id,
                    "abandoned",
                    f"stopped: the execution is {self.known.state.status} now",
                    attempt=self.attempt,
                )
            case Lost():
                return result
        raise TypeError(f"unknown result {result!r}")

    def _input(self, scratch: ScratchDir) -> InputSpec | None:
        """The uploaded file, copied into the scratch directory for the worker."""
        declared, blob = self.state.input, self.state.upload
        if declared is None or blob is None:
            return None
        path = scratch.path / f"input{Path(declared.filename).suffix}"
        with path.open("wb") as out:
            for chunk in self.runner.blobs.get(blob.container, blob.name):
                out.write(chunk)
        return InputSpec(str(path), declared.filename, blob.size, blob.content_type)

    def _handle(self, command: Command) -> None:
        outcome = self.service.handle(self.execution_id, command, self.trace, known=self.known)
        self.known = outcome.execution

    def progress(self, percent: float, message: str) -> None:
        now = time.monotonic()
        if self._stopped or now - self._last_progress < self.runner.progress_interval:
            return
        self._last_progress = now
        try:
            percent = max(0.0, min(100.0, float(percent)))
            self._handle(ReportProgress(percent=percent, message=str(message)[:500]))
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

    def complete(
        self, output: Output, scratch: ScratchDir, limits: Limits, duration_ms: int
    ) -> RunReport:
        if output.path is None and output.text is None:
            return self.fail("no_output", "the tool finished without producing an output", False)
        ref: BlobRef | None = None
        text = output.text
        # Storage errors propagate: _settle() turns them into Failed.
        if text is not None and len(text) > MAX_INLINE_RESULT:  # Completed.result's bound
            ref = self.runner.blobs.put(
                "processed",
                f"{self.execution_id}/result.txt",
                [text.encode()],
                content_type="text/plain; charset=utf-8",
            )
            text = None
        elif output.path is not None:
            path = Path(output.path).resolve()
            if not path.is_relative_to(scratch.path.resolve()) or not path.is_file():
                return self.fail(
                    "tool_crashed", f"the output {output.path} is not a file of the run", False
                )
            if path.stat().st_size > limits.output:
                limit = megabytes(limits.output)
                return self.fail(OUTPUT_TOO_LARGE, f"the output is larger than {limit}", False)
            with path.open("rb") as f:
                ref = self.runner.blobs.put(
                    "processed",
                    f"{self.execution_id}/{output.filename or path.name}",
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

    def failure(self, code: str, message: str, retryable: bool) -> Fail:
        """The ``Fail`` of this attempt, saying when the next one comes by itself (if it does)."""
        tool = self.tool
        allowed = tool.max_attempts if tool is not None else None
        next_at = None
        if retryable and allowed is not None and self.attempt < allowed:
            wait = (
                0.0 if code == WORKER_LOST_CODE else self.runner.retry_backoff.delay(self.attempt)
            )
            next_at = self.service.clock() + timedelta(seconds=wait)
        return Fail(
            code=code,
            message=message[:2000],
            retryable=retryable,
            next_attempt_at=next_at,
            max_attempts=allowed,
        )

    def fail(self, code: str, message: str, retryable: bool) -> RunReport:
        try:
            self._handle(self.failure(code, message, retryable))
        except DomainError as exc:
            return RunReport(self.execution_id, "abandoned", str(exc), attempt=self.attempt)
        return self._report("failed", message, code, retryable)

    def report_lost(self, known: Execution, lost: Lost) -> RunReport:
        self.known = known
        return self._report("failed", lost.message, WORKER_LOST_CODE, True)

    def _report(
        self, outcome: RunOutcome, detail: str = "", code: str | None = None, retry: bool = False
    ) -> RunReport:
        return RunReport(self.execution_id, outcome, detail, code, retry, self.attempt, self.known)
