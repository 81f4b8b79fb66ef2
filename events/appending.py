"""Rules every backend applies to an append, kept in one place so both behave the same.

``check_batch`` refuses a malformed append before any I/O. ``resolve_duplicates`` decides what
an append whose event ids were stored before means: the same events again (an idempotent retry,
answered with the first result) or a different event reusing an id (an error). ``KnownHeads``
spares an append the read of its stream's last hash; ``AppendSignal`` wakes ``wait_for`` callers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

import orjson

from events.catalog import Catalog
from events.envelope import (
    MAX_EVENT_BYTES,
    NewEvent,
    RecordedEvent,
    check_stream_name,
    is_validated,
    recorded_event,
)
from events.errors import DuplicateEventId, EventSchemaError, EventTooLarge, EventValidationError
from events.store import ANY, AppendResult


@dataclass(frozen=True, slots=True)
class StoredIdentity:
    """What the store holds for an event id, enough to tell a retry from a conflict."""

    stream: str
    version: int
    position: int
    type: str
    data_json: str
    subject: str


def check_batch(
    stream: str, events: Sequence[NewEvent], expected_version: int, catalog: Catalog
) -> None:
    """Refuse a malformed append: bad stream name or version, unknown type, invalid or huge data."""
    check_stream_name(stream)
    if not events:
        raise EventValidationError("an append needs at least one event")
    if not isinstance(expected_version, int) or expected_version < ANY:
        raise EventValidationError(f"invalid expected version {expected_version!r}")
    seen: set[UUID] = set()
    for event in events:
        if not isinstance(event, NewEvent):
            raise EventValidationError(
                f"append takes NewEvent objects (see events.envelope.new_event), got {event!r:.80}"
            )
        if event.id in seen:
            raise DuplicateEventId(event.id, "appears twice in one append")
        seen.add(event.id)
        if event.size > MAX_EVENT_BYTES:
            raise EventTooLarge(event.type, event.size, MAX_EVENT_BYTES)
        if is_validated(event):
            continue
        # A NewEvent made by hand (or changed with dataclasses.replace) has not been validated,
        # and the stored bytes must always read back as the model: check exactly those bytes.
        try:
            data = orjson.loads(event.data_json)
        except orjson.JSONDecodeError as exc:
            raise EventSchemaError(event.type, f"data is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EventSchemaError(event.type, "data must be a JSON object")
        catalog.load(event.type, event.schema_version, data)


def resolve_duplicates(
    stream: str, events: Sequence[NewEvent], stored: Mapping[UUID, StoredIdentity]
) -> AppendResult:
    """The first append's result when ``events`` repeat it exactly; otherwise DuplicateEventId."""
    for event in events:
        found = stored.get(event.id)
        if found is None:
            raise DuplicateEventId(
                next(iter(stored)), "was stored before, but this append also has new events"
            )
        same = (
            found.stream == stream
            and found.type == event.type
            and found.data_json == event.data_json
            and found.subject == event.subject
        )
        if not same:
            raise DuplicateEventId(event.id, f"is stored in {found.stream} with different content")
    rows = [stored[e.id] for e in events]
    versions = [r.version for r in rows]
    if versions != list(range(versions[0], versions[0] + len(versions))):
        raise DuplicateEventId(events[0].id, "was stored in a different order or batch")
    return AppendResult(
        stream=stream,
        first_version=rows[0].version,
        last_version=rows[-1].version,
        first_position=rows[0].position,
        last_position=rows[-1].position,
        duplicate=True,
    )


def recorded_events(
    stream: str,
    first_version: int,
    first_position: int,
    events: Sequence[NewEvent],
    hashes: Sequence[bytes],
) -> tuple[RecordedEvent, ...]:
    """The events of an append as the store now holds them (one append's positions are
    consecutive on both backends)."""
    return tuple(
        recorded_event(
            (
                first_position + offset,
                stream,
                first_version + offset,
                event.id,
                event.type,
                event.schema_version,
                event.time,
                event.data_json,
                event.source,
                event.subject,
                event.metadata_json,
                link,
            )
        )
        for offset, (event, link) in enumerate(zip(events, hashes, strict=True))
    )


class KnownHeads:
    """The last (version, hash) of streams a store object wrote or read.

    It lets an append chain its hashes without first asking for the previous event's hash. It may
    be out of date, never wrong: a stored version's hash never changes, and the insert itself
    checks the stream's state (the (stream, version) unique constraint; on PostgreSQL also the
    previous hash), so an outdated entry costs a refused append and a fresh read, nothing else.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._heads: dict[str, tuple[int, bytes]] = {}

    def get(self, stream: str) -> tuple[int, bytes] | None:
        return self._heads.get(stream)

    def remember(self, stream: str, version: int, last_hash: bytes) -> None:
        if len(self._heads) >= self._capacity:
            self._heads.clear()  # crude, but an evicted head only costs one query
        self._heads[stream] = (version, last_hash)

    def saw(self, stream: str, events: Sequence[RecordedEvent]) -> None:
        """Remember the head of a stream just read (a writer usually reads, then appends)."""
        if events:
            self.remember(stream, events[-1].version, events[-1].hash)

    def forget(self, stream: str) -> None:
        self._heads.pop(stream, None)


class AppendSignal:
    """Wakes this process's ``wait_for`` callers when an append commits (or is heard of).

    A generation counter, not a bare Condition: an append that commits between a waiter's look
    at the head and its wait still wakes it.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait_for(
        self, head: Callable[[], int], after_position: int, timeout: float, poll_interval: float
    ) -> bool:
        """Until ``head()`` passes ``after_position`` (True) or ``timeout`` passes (False).

        ``head`` is asked again on every notification and at least every ``poll_interval``.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._condition:
                generation = self._generation
            if head() > after_position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._condition:
                if self._generation == generation:
                    self._condition.wait(min(remaining, poll_interval))
