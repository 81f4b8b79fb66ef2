"""The CloudEvents envelope: events on the way in (``NewEvent``) and as stored (``RecordedEvent``).

``new_event`` builds a ``NewEvent`` only from a payload the catalog accepts. Its JSON text is fixed
at creation: the store keeps those exact bytes and hashes them, which is what lets ``verify``
recompute every link of a stream's hash chain from the stored columns alone.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import orjson

from events.catalog import Catalog, EventPayload, catalog as execution_catalog
from events.errors import EventTooLarge, InvalidExtension, InvalidStreamName

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "/magictoolbox/local"
# Event Grid refuses events over 1 MB; refusing them here keeps every stored event publishable.
MAX_EVENT_BYTES = 1024 * 1024
GENESIS_HASH = bytes(32)
_new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class _Validated:
    """new_event's mark: this type, schema version and exact JSON text passed the catalog."""

    type: str
    schema_version: int
    data_json: str


_STREAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
_EXTENSION_RE = re.compile(r"^[a-z0-9]{1,20}$")


def check_stream_name(stream: str) -> str:
    if not isinstance(stream, str) or not _STREAM_RE.match(stream):
        raise InvalidStreamName(
            f"stream name {stream!r} must be 1-200 characters of letters, digits and _.:/-"
        )
    return stream


def is_validated(event: NewEvent) -> bool:
    """Whether ``new_event`` made this event (and so validated it), or it was made by hand."""
    mark = event.checked
    return (
        isinstance(mark, _Validated)
        and mark.data_json is event.data_json  # dataclasses.replace(data_json=…) loses the mark
        and mark.type == event.type
        and mark.schema_version == event.schema_version
    )


EXECUTION_STREAM_PREFIX = "execution-"


def execution_stream(execution_id: UUID) -> str:
    return f"{EXECUTION_STREAM_PREFIX}{execution_id}"


def execution_subject(category: str, tool: str, execution_id: UUID) -> str:
    return f"/tools/{category}/{tool}/executions/{execution_id}"


def canonical_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to append. Build it with ``new_event`` so its payload is validated."""

    type: str
    data_json: str
    schema_version: int
    id: UUID
    source: str
    subject: str
    metadata: Mapping[str, str]
    time: datetime
    # Set only by new_event(): the payload was validated against the catalog when it was made.
    checked: object = field(default=None, compare=False, repr=False)

    metadata_json: str = field(init=False, compare=False, repr=False)
    size: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Computed once: every append needs both, and NewEvent is immutable.
        metadata_json = canonical_json(dict(self.metadata))
        object.__setattr__(self, "metadata_json", metadata_json)
        # The size of this event as a CloudEvent JSON document, as Event Grid counts it: the
        # data, every attribute, and about 150 bytes of keys, quotes, id and time.
        size = 150 + len(self.data_json.encode()) + len(metadata_json.encode())
        size += len(self.type) + len(self.source.encode()) + len(self.subject.encode())
        object.__setattr__(self, "size", size)

    def digest(self, stream: str, version: int) -> bytes:
        return content_digest(
            self.id,
            stream,
            version,
            self.type,
            self.schema_version,
            self.time,
            self.data_json,
            self.source,
            self.subject,
            self.metadata_json,
        )


def new_event(
    payload: EventPayload,
    *,
    subject: str = "",
    source: str = DEFAULT_SOURCE,
    event_id: UUID | None = None,
    metadata: Mapping[str, str] | None = None,
    time: datetime | None = None,
    catalog: Catalog = execution_catalog,
) -> NewEvent:
    """Validate ``payload`` against the catalog and wrap it for appending."""
    event_type = type(payload).event_type()
    model = catalog.validate(event_type, payload)
    ext = dict(metadata or {})
    for key, value in ext.items():
        if not _EXTENSION_RE.match(key) or not isinstance(value, str):
            raise InvalidExtension(
                f"CloudEvents extension {key!r} needs a lowercase alphanumeric name and a "
                f"string value, not {type(value).__name__}"
            )
    data_json = model.model_dump_json()
    schema_version = type(model).schema_version
    event = NewEvent(
        type=event_type,
        data_json=data_json,
        schema_version=schema_version,
        id=event_id or uuid4(),
        source=source,
        subject=subject,
        metadata=ext,
        time=(time or datetime.now(UTC)).astimezone(UTC),
        checked=_Validated(event_type, schema_version, data_json),
    )
    if event.size > MAX_EVENT_BYTES:
        raise EventTooLarge(event_type, event.size, MAX_EVENT_BYTES)
    return event


def content_digest(
    event_id: UUID,
    stream: str,
    version: int,
    event_type: str,
    schema_version: int,
    time: datetime,
    data_json: str,
    source: str,
    subject: str,
    metadata_json: str,
) -> bytes:
    """sha256 of an event's canonical form: every stored field but its global position and hash."""
    parts = (
        str(event_id),
        stream,
        str(version),
        event_type,
        str(schema_version),
        time.astimezone(UTC).isoformat(timespec="microseconds"),
        source,
        subject,
        metadata_json,
        data_json,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def chain(previous_hash: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(previous_hash + digest).digest()


# Every follower of the feed in a process (each projection, the Functions host, the webhook
# fan-out, the anchorer, the service loading a stream to decide) reads the same event within
# milliseconds. For a large payload (a long text to hash) making a Python string of its column
# and decoding it, once per follower, was most of the process's work for it. So the stores leave
# a large payload out of their reads and fill it in through ``with_large_payloads``: the first
# reader fetches it, the others wait for it and share the string; ``RecordedEvent.data`` decodes
# it once in the same way. The few latest are kept, by event id.
SHARED_DECODE_FROM = 64 * 1024  # characters (SQLite) or bytes (PostgreSQL) of JSON
SHARED_DECODE_KEPT = 8


class _Latest:
    """The few latest values made for an event id: ``get(event_id, make)`` makes one (holding
    the lock, so readers of the same event wait for the first instead of making their own)."""

    def __init__(self, kept: int = SHARED_DECODE_KEPT) -> None:
        self.kept = kept
        self._values: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, event_id: UUID, make: Callable[[], Any]) -> Any:
        with self._lock:
            value = self._values.get(event_id)
            if value is None:
                value = self._values[event_id] = make()
                while len(self._values) > self.kept:
                    self._values.popitem(last=False)
            else:
                self._values.move_to_end(event_id)
        return value


_texts = _Latest()
_decoded = _Latest()


def with_large_payloads(
    events: list[RecordedEvent], fetch: Callable[[UUID], str]
) -> list[RecordedEvent]:
    """``events`` as a store read them, a large payload left out (``data_json`` None) filled in:
    ``fetch(event_id)`` reads its column, once per process however many readers need it."""
    if all(event.data_json is not None for event in events):
        return events
    return [
        event
        if event.data_json is not None
        else event._replace(data_json=_texts.get(event.id, lambda e=event: fetch(e.id)))
        for event in events
    ]


def _fresh(value: Any) -> Any:
    """A copy of decoded JSON's containers (its strings, immutable, are shared): a reader that
    changes what it got changes nobody else's."""
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


class RecordedEvent(NamedTuple):
    """An event as the store keeps it, with its stream version and global position.

    A named tuple rather than a dataclass: readers build hundreds of thousands of these a second
    when a projection catches up, and a tuple is the cheapest immutable record Python has. For the
    same reason data and metadata stay the stored JSON text until asked for: ``data`` and
    ``metadata`` decode it on each access (keep the result if you need it twice; a large payload
    is decoded once per process, see ``SHARED_DECODE_FROM``), ``payload()`` decodes and
    validates it into the current model.
    """

    position: int
    stream: str
    version: int
    id: UUID
    type: str
    schema_version: int
    time: datetime
    data_json: str
    source: str
    subject: str
    metadata_json: str
    hash: bytes

    @property
    def data(self) -> dict[str, Any]:
        if len(self.data_json) < SHARED_DECODE_FROM:
            return orjson.loads(self.data_json)
        return _fresh(_decoded.get(self.id, lambda: orjson.loads(self.data_json)))

    @property
    def metadata(self) -> dict[str, str]:
        """The CloudEvents extensions (traceparent, correlationid, …)."""
        return orjson.loads(self.metadata_json)

    def payload(self, catalog: Catalog = execution_catalog) -> EventPayload:
        """The payload as the current model, upcast from the schema version it was stored with."""
        return catalog.load(self.type, self.schema_version, self.data)

    def to_cloudevent(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": str(self.id),
            "source": self.source,
            "type": self.type,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data,
            "streamversion": self.version,
            "streamposition": self.position,
            "dataschemaversion": self.schema_version,
        }
        if self.subject:
            doc["subject"] = self.subject
        doc.update(self.metadata)
        return doc


def recorded_event(row: Sequence[Any]) -> RecordedEvent:
    """A RecordedEvent from a stored row, columns in the order of its fields."""
    return _new_tuple(RecordedEvent, row)
