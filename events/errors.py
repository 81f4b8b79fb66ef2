"""Typed errors of the event store and the catalog.

Each carries a stable ``code`` so that the web layer can turn it into problem+json without guessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from pydantic import ValidationError


class EventStoreError(Exception):
    """Base of every error the events package raises on purpose."""

    code = "event_store_error"


class EventValidationError(EventStoreError):
    """An event was refused before anything was written."""

    code = "invalid_event"


class UnknownEventType(EventValidationError):
    code = "unknown_event_type"

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class EventSchemaError(EventValidationError):
    code = "event_schema_invalid"

    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"payload of {event_type} does not match its schema: {detail}")
        self.event_type = event_type
        self.detail = detail


class EventTooLarge(EventValidationError):
    code = "event_too_large"

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        super().__init__(f"{event_type} is {size} bytes as a CloudEvent; the limit is {limit}")
        self.event_type = event_type
        self.size = size
        self.limit = limit


class InvalidStreamName(EventValidationError):
    code = "invalid_stream_name"


class InvalidExtension(EventValidationError):
    """A CloudEvents extension attribute with a bad name or a value that is not a string."""

    code = "invalid_extension"


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the writer expected (optimistic concurrency)."""

    code = "wrong_expected_version"

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        super().__init__(f"stream {stream!r} expected at {expected}, actually at {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class DuplicateEventId(EventStoreError):
    """An event id was stored before with other content, or a batch only partly repeats one."""

    code = "duplicate_event_id"

    def __init__(self, event_id: UUID, reason: str) -> None:
        super().__init__(f"event id {event_id} {reason}")
        self.event_id = event_id


class StreamNotFound(EventStoreError):
    code = "stream_not_found"

    def __init__(self, stream: str) -> None:
        super().__init__(f"no stream {stream!r}")
        self.stream = stream


def validation_summary(exc: ValidationError, root: str = "value", limit: int = 5) -> str:
    """A pydantic error as one line for people: ``where: what`` for its first few problems
    (``root`` names the whole value when the problem is with it rather than a field)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or root}: {error['msg']}"
        for error in exc.errors()[:limit]
    )
