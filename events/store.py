"""The event store interface shared by the SQLite and PostgreSQL backends.

Streams are append-only and versioned from 0; the global feed orders every event by ``position``.
Both backends pass the same contract tests (tests/events/test_store_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from events.envelope import NewEvent, RecordedEvent

# Special expected versions; any int >= 0 means "the stream is exactly at this version".
ANY = -2
NO_STREAM = -1


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed: the versions and global positions of its first and last event."""

    stream: str
    first_version: int
    last_version: int
    first_position: int
    last_position: int
    duplicate: bool = False  # True when every event id was already stored: nothing new was written
    # The events as stored (versions, positions, hashes), so a writer knows its stream without
    # reading it back; empty for a duplicate.
    recorded: tuple[RecordedEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first event of a stream whose stored hash does not match the recomputed chain."""

    stream: str
    version: int
    position: int
    event_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    streams: int
    events: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """How far readers can read, and what (if anything) keeps them from the newest event."""

    readable_head: int  # what head_position() says: every event up to here can be read
    newest_position: int  # the newest committed event, readable or not yet
    held_back_by: tuple[str, ...] = ()  # sessions whose open transactions hold the feed back

    @property
    def held_back(self) -> bool:
        return self.newest_position > self.readable_head


class EventStore(Protocol):
    def setup(self) -> None:
        """Create or upgrade the schema; safe to call again."""

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY
    ) -> AppendResult: ...

    def read_stream(self, stream: str, from_version: int = 0) -> list[RecordedEvent]: ...

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        stream_prefix: str | None = None,
    ) -> list[RecordedEvent]: ...

    def head_position(self) -> int:
        """The highest position a reader can see now (0 for an empty store)."""

    def wait_for(self, after_position: int, timeout: float) -> bool:
        """Block until an event after ``after_position`` is readable or ``timeout`` passes."""

    def stream_version(self, stream: str) -> int:
        """The stream's last version, or NO_STREAM (-1)."""

    def feed_status(self) -> FeedStatus: ...

    def streams(self, prefix: str | None = None) -> Iterator[str]: ...

    def verify(self, stream: str) -> VerifyReport: ...

    def verify_all(self) -> VerifyReport: ...

    def close(self) -> None: ...
