"""The execution event catalog: a pydantic model per event type, with versions and upcasters.

Every payload that reaches the store was validated here, and every payload read back goes through
``Catalog.load``: stored data written under an older schema version is upcast, step by step, to the
current model before it is validated, so readers only ever see the current shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.errors import EventSchemaError, UnknownEventType, validation_summary

TYPE_PREFIX = "MagicToolbox.Execution."

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventPayload(BaseModel):
    """Base of every event payload: ``name`` is the short name, ``schema_version`` the current."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    schema_version: ClassVar[int] = 1
    # The status an execution has after this event (the decider's Status values); None: no
    # change. Stated here once for the decider and the read models alike.
    status: ClassVar[str | None] = None

    @classmethod
    def event_type(cls) -> str:
        return TYPE_PREFIX + cls.name

    def summary(self) -> str:
        """The one line of this event worth reading (its JSON has the rest)."""
        return ""


class BlobRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    container: Literal["uploads", "processed", "temp"]
    name: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = Field(min_length=1, max_length=255)


class DeclaredInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)
    content_type: str = Field(min_length=1, max_length=255)


class Submitted(EventPayload):
    name: ClassVar[str] = "Submitted"
    status: ClassVar[str | None] = "submitted"

    execution_id: UUID
    tool: str = Field(min_length=1, max_length=100)
    category: str = Field(min_length=1, max_length=50)
    tool_version: str = Field(min_length=1, max_length=50)
    mode: Literal["sync", "async"]
    params: dict[str, Any] = Field(default_factory=dict)
    owner: str = Field(min_length=1, max_length=150)
    input: DeclaredInput | None = None
    replay_of: UUID | None = None

    def summary(self) -> str:
        text = f"{self.tool} ({self.mode})"
        if self.input is not None:
            text += f", input {self.input.filename}"
        return text + (f", replay of {self.replay_of}" if self.replay_of else "")


class Uploaded(EventPayload):
    name: ClassVar[str] = "Uploaded"
    status: ClassVar[str | None] = "uploaded"

    blob: BlobRef

    def summary(self) -> str:
        return f"stored {file_size(self.blob.size)} ({self.blob.content_type})"


class Processing(EventPayload):
    name: ClassVar[str] = "Processing"
    status: ClassVar[str | None] = "processing"

    attempt: int = Field(ge=1)
    worker_id: str = Field(min_length=1, max_length=200)
    deadline: datetime
    # The worker renews a lease this long while it lives (its heartbeat); a run whose worker's
    # lease ran out is failed with ``worker_lost`` and retried at once. None: before leases.
    lease_seconds: float | None = Field(default=None, gt=0)

    def summary(self) -> str:
        return f"attempt {self.attempt} by {self.worker_id}"


class Progress(EventPayload):
    """v1 reported ``fraction`` (0..1); v2 reports ``percent`` (0..100) and a message."""

    name: ClassVar[str] = "Progress"
    schema_version: ClassVar[int] = 2

    percent: float = Field(ge=0, le=100)
    message: str = Field(default="", max_length=500)

    def summary(self) -> str:
        return f"{self.percent:g}%" + (f" {self.message}" if self.message else "")


class Completed(EventPayload):
    name: ClassVar[str] = "Completed"
    status: ClassVar[str | None] = "completed"

    output: BlobRef | None = None
    result: str | None = Field(default=None, max_length=64 * 1024)
    duration_ms: int = Field(ge=0)

    def summary(self) -> str:
        kind = "a file" if self.output is not None else "an inline result"
        return f"{kind} in {duration(self.duration_ms)}"


class Failed(EventPayload):
    """v1 carried a free-text ``error``; v2 splits it into a stable ``code`` and a ``message``."""

    name: ClassVar[str] = "Failed"
    status: ClassVar[str | None] = "failed"
    schema_version: ClassVar[int] = 2

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    message: str = Field(max_length=2000)
    retryable: bool
    attempt: int = Field(ge=0)
    # When another attempt comes by itself (None: none will, unless the owner asks), and how
    # many attempts the tool allows in all. Recorded by whoever failed the attempt, so readers
    # need not know the tool or the backoff to say "retrying in 25 s, attempt 2 of 3".
    next_attempt_at: datetime | None = None
    max_attempts: int | None = Field(default=None, ge=1)

    def summary(self) -> str:
        text = f"{self.code}: {self.message}" + (" (retryable)" if self.retryable else "")
        if self.next_attempt_at is not None:
            text += f"; next attempt at {self.next_attempt_at:%H:%M:%S}"
        return text


class Cancelled(EventPayload):
    name: ClassVar[str] = "Cancelled"
    status: ClassVar[str | None] = "cancelled"

    reason: str = Field(default="", max_length=500)

    def summary(self) -> str:
        return self.reason


class Retried(EventPayload):
    name: ClassVar[str] = "Retried"
    status: ClassVar[str | None] = "retrying"

    next_attempt: int = Field(ge=2)

    def summary(self) -> str:
        return f"next attempt {self.next_attempt}"


class Expired(EventPayload):
    name: ClassVar[str] = "Expired"
    status: ClassVar[str | None] = "expired"

    blobs_removed: list[BlobRef] = Field(default_factory=list)
    # True when its owner deleted it (DELETE): it is gone from the owner's API and UI as well;
    # the stream stays for the audit. Absent (False) in retention's and in older events.
    deleted: bool = False

    def summary(self) -> str:
        count = len(self.blobs_removed)
        removed = f"{count} file{'s' if count != 1 else ''} removed"
        return f"deleted by its owner; {removed}" if self.deleted else removed


def file_size(size: int) -> str:
    """``1536`` → ``1.5 KB``; bytes below a kilobyte are counted as such."""
    if size < 1024:
        return f"{size} byte{'s' if size != 1 else ''}"
    value = size / 1024
    for unit in ("KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def duration(ms: int | None) -> str:
    """A run's duration as people read it: ``840 ms``, ``12.5 s``; an em dash when unknown."""
    if ms is None:
        return "—"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


class Catalog:
    """Event types by their CloudEvents ``type``, plus the upcasters between schema versions."""

    def __init__(self, models: list[type[EventPayload]]) -> None:
        self._models: dict[str, type[EventPayload]] = {m.event_type(): m for m in models}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    @property
    def types(self) -> Mapping[str, type[EventPayload]]:
        return self._models

    def model(self, event_type: str) -> type[EventPayload]:
        try:
            return self._models[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns a ``from_version`` payload into the next version."""

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return register

    def upcast(self, event_type: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
        model = self.model(event_type)
        version = schema_version
        while version < model.schema_version:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise EventSchemaError(event_type, f"no upcaster from schema version {version}")
            data = step(data)
            version += 1
        if version > model.schema_version:
            raise EventSchemaError(event_type, f"schema version {version} is newer than this code")
        return data

    def validate(self, event_type: str, data: Mapping[str, Any] | EventPayload) -> EventPayload:
        """The current model for ``data`` (a dict in the current schema, or a model to re-check)."""
        model = self.model(event_type)
        if isinstance(data, EventPayload):
            if type(data) is not model:
                raise EventSchemaError(event_type, f"payload is a {type(data).__name__}")
            data = data.model_dump(mode="json")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise EventSchemaError(event_type, validation_summary(exc, root="payload")) from None

    def load(self, event_type: str, schema_version: int, data: dict[str, Any]) -> EventPayload:
        """Read stored data of any known schema version as the current model."""
        return self.validate(event_type, self.upcast(event_type, schema_version, data))


EXECUTION_EVENTS: list[type[EventPayload]] = [
    Submitted,
    Uploaded,
    Processing,
    Progress,
    Completed,
    Failed,
    Cancelled,
    Retried,
    Expired,
]

catalog = Catalog(EXECUTION_EVENTS)


@catalog.upcaster(Progress.event_type(), 1)
def _progress_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["percent"] = round(float(data.pop("fraction")) * 100, 4)
    data.setdefault("message", "")
    return data


@catalog.upcaster(Failed.event_type(), 1)
def _failed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["message"] = data.pop("error")
    data.setdefault("code", "unknown_error")
    return data
