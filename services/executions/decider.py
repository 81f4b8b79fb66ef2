"""The execution state machine: a pure ``Decider`` (``initial_state``, ``evolve``, ``decide``,
``is_terminal``), and what each status allows.

    Submitted → (Uploaded) → Processing → Completed | Failed
    Failed (retryable, attempts left) → Retried → Processing …; any other Failed is final
    Submitted / Uploaded / Processing / Retried → Cancelled; so is a Failed awaiting its retry
    Processing past its deadline → Failed(timeout, retryable)
    Processing whose worker is gone → Failed(worker_lost, retryable)
    Completed / Failed / Cancelled → Expired

``decide`` returns the events a command produces or raises a ``DomainError`` naming why the
command is illegal in this state; ``actions`` tells the read side what an owner may ask in a
status, from the same rules. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar
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
from events.errors import validation_summary
from services.executions.commands import (
    Cancel,
    Command,
    Complete,
    Expire,
    Fail,
    LoseWorker,
    RecordUpload,
    ReportProgress,
    Retry,
    Start,
    Submit,
    TimeOut,
)

TIMEOUT_CODE = "timeout"
WORKER_LOST_CODE = "worker_lost"


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
# What each command needs (``decide``) and so what the read side may offer (``actions``).
STARTABLE = WAITING
CANCELLABLE = WAITING | {Status.PROCESSING}
RETRYABLE = frozenset({Status.FAILED})
EXPIRABLE = TERMINAL
# A run that has ended: nothing more happens to it unless someone asks (a retry, a delete).
FINISHED = TERMINAL | {Status.EXPIRED}


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
    lease_seconds: float | None = None  # the running worker keeps a lease this long
    next_attempt_at: datetime | None = None  # a failure's automatic retry is due then
    max_attempts: int | None = None  # as the last failure recorded it
    percent: float = 0.0
    progress_message: str = ""
    output: BlobRef | None = None
    result: str | None = None
    duration_ms: int | None = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    blobs_removed: tuple[BlobRef, ...] = ()
    ended_as: Status | None = None  # the terminal status an Expired execution had
    deleted: bool = False  # its owner deleted it: gone from their API, kept for the audit


def initial_state() -> ExecutionState:
    return ExecutionState()


def evolve(state: ExecutionState, event: EventPayload) -> ExecutionState:
    """The state after ``event``. Events are facts: evolve never refuses one."""
    ended_as = state.status  # what an Expired execution had been
    if event.status is not None:  # the status each event leads to is the catalog's
        state = replace(state, status=Status(event.status))
    match event:
        case Submitted():
            return replace(
                state,
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
            return replace(state, upload=event.blob)
        case Processing():
            return replace(
                state,
                attempt=event.attempt,
                worker_id=event.worker_id,
                deadline=event.deadline,
                lease_seconds=event.lease_seconds,
                next_attempt_at=None,
                percent=0.0,
                progress_message="",
                error=None,
            )
        case Progress():
            return replace(state, percent=event.percent, progress_message=event.message)
        case Completed():
            return replace(
                state,
                percent=100.0,
                output=event.output,
                result=event.result,
                duration_ms=event.duration_ms,
            )
        case Failed():
            error = ErrorInfo(event.code, event.message, event.retryable)
            return replace(
                state,
                error=error,
                next_attempt_at=event.next_attempt_at,
                max_attempts=event.max_attempts,
            )
        case Cancelled():
            return replace(state, cancel_reason=event.reason, next_attempt_at=None)
        case Retried():
            return replace(state, next_attempt_at=None)
        case Expired():
            if ended_as is Status.EXPIRED:  # deleted after retention expired it: it ended so
                ended_as = state.ended_as
            return replace(
                state,
                ended_as=ended_as,
                blobs_removed=state.blobs_removed + tuple(event.blobs_removed),
                deleted=state.deleted or event.deleted,
            )
    raise TypeError(f"evolve does not know {type(event).__name__}")


def decide(command: Command, state: ExecutionState) -> list[EventPayload]:
    """The events ``command`` produces in ``state``, or a DomainError saying why it cannot."""
    try:
        return _decide(command, state)
    except ValidationError as exc:
        detail = validation_summary(exc, root="value")
        raise InvalidCommand(f"{type(command).__name__}: {detail}", state.status) from None


def is_terminal(state: ExecutionState) -> bool:
    """Whether the run has ended (completed, failed, cancelled or expired)."""
    return state.status in FINISHED


def owned_by(state: ExecutionState, owner: str | None) -> bool:
    """Whether the execution exists and is ``owner``'s (anyone's for None): another owner's
    execution does not exist for you."""
    return state.status is not Status.NEW and (owner is None or state.owner == owner)


def actions(
    status: Status,
    *,
    awaiting_input: bool = False,
    has_output: bool = False,
    retry_pending: bool = False,
) -> list[str]:
    """What an owner may ask of an execution in ``status``, by the API's names: the commands
    ``decide`` accepts there (``replay`` submits a copy, so it needs the input still there;
    a failure whose automatic retry is pending may be cancelled, or retried now; any other
    failure is final)."""
    found = []
    if status in CANCELLABLE or (status is Status.FAILED and retry_pending):
        found.append("cancel")
    if status in RETRYABLE and retry_pending:
        found.append("retry")
    if status is not Status.EXPIRED and not awaiting_input:
        found.append("replay")
    if status in EXPIRABLE:
        found.append("delete")
    if status is Status.COMPLETED and has_output:
        found.append("download")
    return found


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
            _require(state, name, STARTABLE)
            if state.input is not None and state.upload is None:
                raise InputNotUploaded("Start: the input file has not been uploaded", state.status)
            return [
                Processing(
                    attempt=state.attempt + 1,
                    worker_id=command.worker_id,
                    deadline=command.now + command.timeout,
                    lease_seconds=command.lease_seconds,
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
                    next_attempt_at=command.next_attempt_at if command.retryable else None,
                    max_attempts=command.max_attempts,
                )
            ]
        case LoseWorker():
            _require(state, name, {Status.PROCESSING})
            if state.worker_id != command.worker_id or state.attempt != command.attempt:
                raise IllegalTransition(
                    f"LoseWorker: attempt {state.attempt} is run by {state.worker_id}, "
                    f"not attempt {command.attempt} by {command.worker_id}",
                    state.status,
                )
            return [
                Failed(
                    code=WORKER_LOST_CODE,
                    message=f"the worker {command.worker_id} running attempt "
                    f"{state.attempt} is gone",
                    retryable=True,
                    attempt=state.attempt,
                    next_attempt_at=command.next_attempt_at,
                    max_attempts=command.max_attempts,
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
                    next_attempt_at=command.next_attempt_at,
                    max_attempts=command.max_attempts,
                )
            ]
        case Cancel():
            if not (state.status is Status.FAILED and state.next_attempt_at is not None):
                _require(state, name, CANCELLABLE)  # a pending automatic retry may be cancelled
            return [Cancelled(reason=command.reason)]
        case Retry():
            _require(state, name, RETRYABLE)
            assert state.error is not None
            # A final failure stays final, whoever asks: an owner's retry only brings forward
            # the automatic one a failure has pending (a new run of a final one is a replay).
            if not state.error.retryable:
                raise NotRetryable(f"Retry: {state.error.code} is final", state.status)
            if state.attempt >= command.max_attempts:
                raise AttemptsExhausted(
                    f"Retry: {state.attempt} of {command.max_attempts} attempts used", state.status
                )
            if command.by_owner and state.next_attempt_at is None:
                raise AttemptsExhausted(
                    f"Retry: attempt {state.attempt} failed with no retry pending", state.status
                )
            return [Retried(next_attempt=state.attempt + 1)]
        case Expire():
            # An owner may delete what retention expired already, once.
            if not (command.deleted and state.status is Status.EXPIRED and not state.deleted):
                _require(state, name, EXPIRABLE)
            return [Expired(blobs_removed=list(command.blobs_removed), deleted=command.deleted)]
    raise TypeError(f"decide does not know {name}")


def _require(state: ExecutionState, command: str, allowed: frozenset[Status] | set[Status]) -> None:
    if state.status not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise IllegalTransition(
            f"{command}: the execution is {state.status.value}, not {wanted}", state.status
        )


E = TypeVar("E")
C = TypeVar("C")
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Decider(Generic[C, E, S]):
    """A decider as one value (Chassaing's pattern): what the command service runs."""

    initial_state: Callable[[], S]
    evolve: Callable[[S, E], S]
    decide: Callable[[C, S], list[E]]
    is_terminal: Callable[[S], bool]

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        """The state after ``events``, from ``state`` (or the initial one)."""
        current = self.initial_state() if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current


execution: Decider[Command, EventPayload, ExecutionState] = Decider(
    initial_state=initial_state, evolve=evolve, decide=decide, is_terminal=is_terminal
)
