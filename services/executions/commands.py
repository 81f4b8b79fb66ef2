"""Commands: what callers ask of an execution. Each is decided against the execution's state.

Times that matter to a decision (``now``) travel in the command, so the decider stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from events.catalog import BlobRef, DeclaredInput


@dataclass(frozen=True, slots=True)
class Submit:
    execution_id: UUID
    tool: str
    category: str
    tool_version: str
    mode: Literal["sync", "async"]
    owner: str
    params: dict[str, Any] = field(default_factory=dict)
    input: DeclaredInput | None = None
    replay_of: UUID | None = None


@dataclass(frozen=True, slots=True)
class RecordUpload:
    blob: BlobRef


@dataclass(frozen=True, slots=True)
class Start:
    worker_id: str
    now: datetime
    timeout: timedelta  # the tool's deadline: Processing past now + timeout is timed out
    lease_seconds: float | None = None  # the worker's lease (None: no heartbeat is kept)


@dataclass(frozen=True, slots=True)
class ReportProgress:
    percent: float
    message: str = ""


@dataclass(frozen=True, slots=True)
class Complete:
    duration_ms: int
    output: BlobRef | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    code: str
    message: str
    retryable: bool
    # When the next automatic attempt comes (None: none will) and the attempts allowed in all.
    next_attempt_at: datetime | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class LoseWorker:
    """The worker running ``attempt`` is gone (its process died, its lease ran out)."""

    worker_id: str
    attempt: int
    next_attempt_at: datetime | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    max_attempts: int = 3
    # An owner may retry a failure the tool called final (e.g. after fixing a parameter); the
    # automatic retry of the Functions host may not.
    by_owner: bool = False


@dataclass(frozen=True, slots=True)
class TimeOut:
    now: datetime
    next_attempt_at: datetime | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class Expire:
    blobs_removed: tuple[BlobRef, ...] = ()
    deleted: bool = False  # its owner deleted it: an expired execution may still be deleted


Command = (
    Submit
    | RecordUpload
    | Start
    | ReportProgress
    | Complete
    | Fail
    | LoseWorker
    | Cancel
    | Retry
    | TimeOut
    | Expire
)
