"""The execution state machine as three pure functions: ``initial_state``, ``evolve``, ``decide``.

    Submitted → (Uploaded) → Processing → Completed | Failed
    Failed (retryable) → Retried → Processing …
    Submitted / Uploaded / Processing / Retried → Cancelled
    Processing past its deadline → Failed(timeout, retryable)
    Completed / Failed / Cancelled → Expired

``decide`` returns the events a command produces or raises a ``DomainError`` naming why the
command is illegal in this state. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from events.catalog import (
    BlobRef,
    Cancelled,
    Completed,
    DeclaredInput,
    EventPayload,
    Expired,
    Failed,
    Processing,
    Progress,
    Retried,
    Submitted,
    Uploaded,
)
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
    Submit,
    TimeOut,
)

TIMEOUT_CODE = "timeout"


class Status(StrEnum):
    NEW = "new"  # no stream yet
    SUBMITTED = "submitted"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    RETRYING = "retrying"  # re-queued after a failure, waiting for a worker
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


WAITING = frozenset({Status.SUBMITTED, Status.UPLOADED, Status.RETRYING})
TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class DomainError(Exception):
    """A command that is illegal in the execution's current state; nothing was written."""

    code = "illegal_transition"

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


class ExecutionNotFound(DomainError):
    code = "execution_not_found"


class ExecutionExists(DomainError):
    code = "execution_exists"


class IllegalTransition(DomainError):
    code = "illegal_transition"


class InputNotUploaded(DomainError):
    code = "input_not_uploaded"


class NotRetryable(DomainError):
    code = "not_retryable"


class AttemptsExhausted(DomainError):
    code = "attempts_exhausted"


class NotTimedOut(DomainError):
    code = "not_timed_out"


class InvalidCommand(DomainError):
    """The command's values do not make a valid event (e.g. a percent over 100)."""

    code = "invalid_command"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class ExecutionState:
    status: Status = Status.NEW
    execution_id: UUID | None = None
    tool: str = ""
    category: str = ""
    tool_version: str = ""
    mode: str = ""
    owner: str = ""
    params: dict[str, Any] | None = None
    input: DeclaredInput | None = None
    replay_of: UUID | None = None
    upload: BlobRef | None = None
    attempt: int = 0
    worker_id: str | None = None
    deadline: datetime | None = None
    percent: float = 0.0
    progress_message: str = ""
    output: BlobRef | None = None
    result: str | None = None
    duration_ms: int | None = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    blobs_removed: tuple[BlobRef, ...] = ()
    ended_as: Status | None = None  # the terminal status an Expired execution had


def initial_state() -> ExecutionState:
    return ExecutionState()


def evolve(state: ExecutionState, event: EventPayload) -> ExecutionState:
    """The state after ``event``. Events are facts: evolve never refuses one."""
    match event:
        case Submitted():
            return replace(
                state,
                status=Status.SUBMITTED,
                execution_id=event.execution_id,
                tool=event.tool,
                category=event.category,
                tool_version=event.tool_version,
                mode=event.mode,
                owner=event.owner,
                params=dict(event.params),
                input=event.input,
                replay_of=event.replay_of,
            )
        case Uploaded():
            return replace(state, status=Status.UPLOADED, upload=event.blob)
        case Processing():
            return replace(
                state,
                status=Status.PROCESSING,
                attempt=event.attempt,
                worker_id=event.worker_id,
                deadline=event.deadline,
                percent=0.0,
                progress_message="",
                error=None,
            )
        case Progress():
            return replace(state, percent=event.percent, progress_message=event.message)
        case Completed():
            return replace(
                state,
                status=Status.COMPLETED,
                percent=100.0,
                output=event.output,
                result=event.result,
                duration_ms=event.duration_ms,
            )
        case Failed():
            error = ErrorInfo(event.code, event.message, event.retryable)
            return replace(state, status=Status.FAILED, error=error)
        case Cancelled():
            return replace(state, status=Status.CANCELLED, cancel_reason=event.reason)
        case Retried():
            return replace(state, status=Status.RETRYING)
        case Expired():
            return replace(
                state,
                status=Status.EXPIRED,
                ended_as=state.status,
                blobs_removed=tuple(event.blobs_removed),
            )
    raise TypeError(f"evolve does not know {type(event).__name__}")


def fold(events: list[EventPayload], state: ExecutionState | None = None) -> ExecutionState:
    state = state or initial_state()
    for event in events:
        state = evolve(state, event)
    return state


def decide(command: Command, state: ExecutionState) -> list[EventPayload]:
    """The events ``command`` produces in ``state``, or a DomainError saying why it cannot."""
    try:
        return _decide(command, state)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidCommand(f"{type(command).__name__}: {detail}", state.status) from None


def _decide(command: Command, state: ExecutionState) -> list[EventPayload]:
    name = type(command).__name__
    if state.status is Status.NEW and not isinstance(command, Submit):
        raise ExecutionNotFound(f"{name}: there is no such execution", state.status)
    match command:
        case Submit():
            if state.status is not Status.NEW:
                raise ExecutionExists("Submit: the execution exists already", state.status)
            return [
                Submitted(
                    execution_id=command.execution_id,
                    tool=command.tool,
                    category=command.category,
                    tool_version=command.tool_version,
                    mode=command.mode,
                    params=command.params,
                    owner=command.owner,
                    input=command.input,
                    replay_of=command.replay_of,
                )
            ]
        case RecordUpload():
            _require(state, name, {Status.SUBMITTED})
            if state.input is None:
                raise IllegalTransition(
                    "RecordUpload: this execution takes no input file", state.status
                )
            return [Uploaded(blob=command.blob)]
        case Start():
            _require(state, name, WAITING)
            if state.input is not None and state.upload is None:
                raise InputNotUploaded("Start: the input file has not been uploaded", state.status)
            return [
                Processing(
                    attempt=state.attempt + 1,
                    worker_id=command.worker_id,
                    deadline=command.now + command.timeout,
                )
            ]
        case ReportProgress():
            _require(state, name, {Status.PROCESSING})
            return [Progress(percent=command.percent, message=command.message)]
        case Complete():
            _require(state, name, {Status.PROCESSING})
            if command.output is None and command.result is None:
                raise IllegalTransition(
                    "Complete: needs an output blob or an inline result", state.status
                )
            return [
                Completed(
                    output=command.output, result=command.result, duration_ms=command.duration_ms
                )
            ]
        case Fail():
            _require(state, name, {Status.PROCESSING})
            return [
                Failed(
                    code=command.code,
                    message=command.message,
                    retryable=command.retryable,
                    attempt=state.attempt,
                )
            ]
        case TimeOut():
            _require(state, name, {Status.PROCESSING})
            if state.deadline is None or command.now <= state.deadline:
                raise NotTimedOut(
                    f"TimeOut: the deadline {state.deadline} has not passed", state.status
                )
            return [
                Failed(
                    code=TIMEOUT_CODE,
                    message=f"attempt {state.attempt} passed its deadline {state.deadline}",
                    retryable=True,
                    attempt=state.attempt,
                )
            ]
        case Cancel():
            _require(state, name, WAITING | {Status.PROCESSING})
            return [Cancelled(reason=command.reason)]
        case Retry():
            _require(state, name, {Status.FAILED})
            assert state.error is not None
            if not state.error.retryable and not command.by_owner:
                raise NotRetryable(f"Retry: {state.error.code} is final", state.status)
            if state.attempt >= command.max_attempts:
                raise AttemptsExhausted(
                    f"Retry: {state.attempt} of {command.max_attempts} attempts used", state.status
                )
            return [Retried(next_attempt=state.attempt + 1)]
        case Expire():
            _require(state, name, TERMINAL)
            return [Expired(blobs_removed=list(command.blobs_removed))]
    raise TypeError(f"decide does not know {name}")


def _require(state: ExecutionState, command: str, allowed: frozenset[Status] | set[Status]) -> None:
    if state.status not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise IllegalTransition(
            f"{command}: the execution is {state.status.value}, not {wanted}", state.status
        )
