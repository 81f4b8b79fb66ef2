"""Audit anchors: keyed checkpoints of the feed, so that ``audit verify`` can see removal.

A stream's hash chain proves that its events follow one another, but whoever can write the
table can delete a stream's last events, a whole stream, or rewrite an event and recompute the
chain after it: what is left is still a valid chain. Anchors close that gap with a key the
database never holds. As the feed advances, the ``Anchorer`` signs (HMAC-SHA256):

- each stream's head: its name, last version, that event's position and chain hash;
- the feed's head: its position, how many events and streams lie up to there, a running hash
  of those events in feed order (``feed_link``), and when anchoring began.

Before signing, it checks that every new event extends its stream's anchored head, so an anchor
never vouches for a chain rewritten since the last one. ``audit`` (events.anchor_check)
compares the anchors with the events. The tables are in ``sql/anchor-tables*.sql``, beside the
events; the anchors' rows are replaced as the feed moves on, the events are never touched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from events.database import Database
from events.envelope import GENESIS_HASH, RecordedEvent, chain, content_digest
from events.following import FeedFollower
from events.store import EventStore

log = logging.getLogger(__name__)

FEED_TABLE = "audit_feed_anchor"
STREAM_TABLE = "audit_stream_anchors"
FEED_ROW = "feed"
STREAM_COLUMNS = ("stream", "version", "position", "hash", "key_id", "mac")
FEED_COLUMNS = (
    "position, events, streams, feed_hash, started_at, anchored_at, key_id, mac"  # FeedAnchor
)
# What the settings' secret is turned into when no audit key of its own is set.
DERIVATION_LABEL = b"magictoolbox-audit-anchors"
LOG_EVERY = 60.0  # seconds between the log lines that record the anchored head


class AnchorError(Exception):
    """Anchoring cannot go on without vouching for something it cannot vouch for."""


@dataclass(frozen=True, slots=True, repr=False)
class AnchorKey:
    """The secret that signs anchors. It lives in settings (or Key Vault), never in a table;
    only its fingerprint ``id`` is stored, to tell "another key" from "forged"."""

    secret: bytes

    @classmethod
    def derived_from(cls, secret: str) -> AnchorKey:
        """A key of its own from another secret (Django's ``SECRET_KEY``)."""
        return cls(hmac.new(secret.encode(), DERIVATION_LABEL, hashlib.sha256).digest())

    @property
    def id(self) -> str:
        return hmac.new(self.secret, b"key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, *fields: str | int | bytes) -> bytes:
        """The HMAC of ``fields``, each as text (bytes as hex), one unit separator between."""
        text = "\x1f".join(f.hex() if isinstance(f, bytes) else str(f) for f in fields)
        return hmac.new(self.secret, text.encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"AnchorKey(id={self.id})"  # never the secret


@dataclass(frozen=True, slots=True)
class FeedAnchor:
    """The anchored head of the global feed."""

    position: int
    events: int
    streams: int
    feed_hash: bytes
    started_at: str
    anchored_at: str
    key_id: str
    mac: bytes

    def fields(self) -> tuple[str | int | bytes, ...]:
        return ("feed", self.position, self.events, self.streams, self.feed_hash,
                self.started_at, self.anchored_at)  # fmt: skip

    def signed(self, key: AnchorKey) -> FeedAnchor:
        unsigned = replace(self, key_id=key.id, mac=b"")
        return replace(unsigned, mac=key.sign(*unsigned.fields()))

    def verifies(self, key: AnchorKey) -> bool:
        return hmac.compare_digest(key.sign(*self.fields()), bytes(self.mac))


@dataclass(frozen=True, slots=True)
class StreamAnchor:
    """The anchored head of one stream: its last version then, and that event's hash."""

    stream: str
    version: int
    position: int
    hash: bytes
    key_id: str
    mac: bytes

    def fields(self) -> tuple[str | int | bytes, ...]:
        return ("stream", self.stream, self.version, self.position, self.hash)

    def signed(self, key: AnchorKey) -> StreamAnchor:
        unsigned = replace(self, key_id=key.id, mac=b"")
        return replace(unsigned, mac=key.sign(*unsigned.fields()))

    def verifies(self, key: AnchorKey) -> bool:
        return hmac.compare_digest(key.sign(*self.fields()), bytes(self.mac))


def feed_link(
    previous: bytes, position: int, stream: str, version: int, event_hash: bytes
) -> bytes:
    """The feed's running hash after one more event (in position order)."""
    head = f"{position}\x1f{stream}\x1f{version}\x1f".encode()
    return hashlib.sha256(previous + head + bytes(event_hash)).digest()


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def genesis(key: AnchorKey) -> FeedAnchor:
    """The feed anchor before the first event: where anchoring starts."""
    started = now_text()
    return FeedAnchor(0, 0, 0, GENESIS_HASH, started, started, "", b"").signed(key)


# -- the tables --------------------------------------------------------------------------------


def _feed_anchor(row: Sequence[Any]) -> FeedAnchor:
    position, events, streams, feed_hash, started, anchored, key_id, mac = row
    return FeedAnchor(
        position, events, streams, bytes(feed_hash), started, anchored, key_id, bytes(mac)
    )


def stream_anchor(row: Sequence[Any]) -> StreamAnchor:
    """A stream anchor from the first columns of ``row`` (``STREAM_COLUMNS``)."""
    stream, version, position, event_hash, key_id, mac = row[:6]
    return StreamAnchor(stream, version, position, bytes(event_hash), key_id, bytes(mac))


def read_feed_anchor(db: Database, *, lock: bool = False) -> FeedAnchor | None:
    """The stored feed anchor, as stored (check it with ``verifies``); None before any."""
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    rows = db.execute(
        f"SELECT {FEED_COLUMNS} FROM {FEED_TABLE} WHERE name = ?{suffix}", (FEED_ROW,)
    )
    return _feed_anchor(rows[0]) if rows else None


def _write_feed_anchor(db: Database, anchor: FeedAnchor) -> None:
    db.execute(
        f"UPDATE {FEED_TABLE} SET position = ?, events = ?, streams = ?, feed_hash = ?, "
        "started_at = ?, anchored_at = ?, key_id = ?, mac = ? WHERE name = ?",
        (anchor.position, anchor.events, anchor.streams, anchor.feed_hash, anchor.started_at,
         anchor.anchored_at, anchor.key_id, anchor.mac, FEED_ROW),
    )  # fmt: skip


def _insert_genesis(db: Database, anchor: FeedAnchor) -> None:
    """The first feed anchor, unless another anchorer made it first (which this one then
    waits for on PostgreSQL, and finds)."""
    db.execute(
        f"INSERT INTO {FEED_TABLE} (name, {FEED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        (FEED_ROW, anchor.position, anchor.events, anchor.streams, anchor.feed_hash,
         anchor.started_at, anchor.anchored_at, anchor.key_id, anchor.mac),
    )  # fmt: skip


def read_stream_anchors(db: Database, streams: Sequence[str]) -> dict[str, StreamAnchor]:
    rows = db.select_in(
        f"SELECT {', '.join(STREAM_COLUMNS)} FROM {STREAM_TABLE} WHERE {{in_}}", "stream", streams
    )
    return {row[0]: stream_anchor(row) for row in rows}


# -- anchoring ---------------------------------------------------------------------------------


class Anchorer:
    """Follows the feed and keeps the anchors at its head, one transaction per pass.

    Several anchorers may run at once (web instances, the Functions timer): a pass locks the
    feed anchor and stands down when another anchorer moved it, as projections do. ``run``
    anchors a burst at most every ``interval`` seconds: events newer than the last anchor are
    what anchors cannot vouch for, so the interval is that window.
    """

    def __init__(
        self,
        store: EventStore,
        database_url: str,
        key: AnchorKey,
        *,
        batch_size: int = 1000,
        interval: float = 1.0,
        idle_timeout: float = 1.0,
    ) -> None:
        self.store = store
        self.key = key
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.head: FeedAnchor | None = None  # the anchor this anchorer last read or wrote
        self.last_error: str | None = None
        self._logged_at = -LOG_EVERY
        self._db = Database(database_url)
        self._lock = threading.Lock()  # one pass at a time: they share one connection
        self.follower = FeedFollower(
            store,
            self._anchor,
            start=self._load,
            name="anchorer",
            batch_size=batch_size,
            on_error=self._failed,
            idle_timeout=idle_timeout,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- passes ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Anchor everything readable now; how many events were anchored. Failures raise."""
        with self._lock:
            self.follower.position = None  # another anchorer may have moved the anchor
            return self.follower.drain()

    def run(self, stop: threading.Event) -> None:
        """Anchor as the feed advances until ``stop`` is set; a failure is logged, backed off
        and tried again."""
        follower = self.follower
        while not stop.is_set():
            with self._lock:
                read = follower.attempt()
            if follower.failures:
                stop.wait(min(max(follower.retry_at - time.monotonic(), 0.0), self.idle_timeout))
            elif (
                read < follower.batch_size
                and follower.position is not None
                and self.store.wait_for(follower.position, self.idle_timeout)
            ):
                stop.wait(self.interval)  # let a burst gather: one pass, one transaction

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Anchor in a daemon thread; set the event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="anchorer", daemon=True)
        thread.start()
        return thread, stop

    # -- one pass ----------------------------------------------------------------------------

    def _load(self) -> int:
        """Where to go on from: the stored feed anchor, which must verify with this key."""
        stored = read_feed_anchor(self._db)
        if stored is not None and not stored.verifies(self.key):
            raise AnchorError(
                "the stored feed anchor does not verify with this key (altered, or made with "
                "another key): refusing to anchor on top of it; `magictoolbox audit verify "
                "--all` says more"
            )
        self.head = stored
        return 0 if stored is None else stored.position

    def _anchor(self, events: Sequence[RecordedEvent], after: int) -> int | None:
        db = self._db
        with db.transaction():
            head = self.head or genesis(self.key)
            if self.head is None:
                _insert_genesis(db, head)
            stored = read_feed_anchor(db, lock=True)
            if stored is None or stored.position != after or stored.mac != head.mac:
                return None  # another anchorer moved it: load it again
            heads = read_stream_anchors(db, sorted({e.stream for e in events}))
            for anchor in heads.values():
                if not anchor.verifies(self.key):
                    raise AnchorError(f"the anchor of stream {anchor.stream!r} does not verify")
            moved: dict[str, StreamAnchor] = {}
            feed_hash, count, streams = head.feed_hash, head.events, head.streams
            for event in events:
                previous = moved.get(event.stream) or heads.get(event.stream)
                self._check_extends(previous, event)
                moved[event.stream] = StreamAnchor(
                    event.stream, event.version, event.position, event.hash, "", b""
                ).signed(self.key)
                feed_hash = feed_link(
                    feed_hash, event.position, event.stream, event.version, event.hash
                )
                count += 1
                streams += event.version == 0
            db.upsert(
                STREAM_TABLE,
                STREAM_COLUMNS,
                [
                    (a.stream, a.version, a.position, a.hash, a.key_id, a.mac)
                    for a in moved.values()
                ],
            )
            new_head = FeedAnchor(
                position=events[-1].position,
                events=count,
                streams=streams,
                feed_hash=feed_hash,
                started_at=head.started_at,
                anchored_at=now_text(),
                key_id="",
                mac=b"",
            ).signed(self.key)
            _write_feed_anchor(db, new_head)
        self.head = new_head
        if time.monotonic() - self._logged_at >= LOG_EVERY:
            # A trail outside the database: what an operator compares a later verify with.
            self._logged_at = time.monotonic()
            log.info(
                "audit anchor: position %d, %d events in %d streams, mac %s",
                new_head.position, new_head.events, new_head.streams, new_head.mac.hex()[:16],
            )  # fmt: skip
        return new_head.position

    @staticmethod
    def _check_extends(previous: StreamAnchor | None, event: RecordedEvent) -> None:
        """``event`` must be the next link of its stream's anchored chain."""
        version, link = (
            (-1, GENESIS_HASH) if previous is None else (previous.version, previous.hash)
        )
        digest = content_digest(
            event.id, event.stream, event.version, event.type, event.schema_version,
            event.time, event.data_json, event.source, event.subject, event.metadata_json,
        )  # fmt: skip
        if event.version != version + 1 or chain(link, digest) != bytes(event.hash):
            raise AnchorError(
                f"version {event.version} of stream {event.stream!r} (position {event.position}) "
                f"does not extend the stream's anchored head (version {version}): the stream "
                "was altered after it was anchored; `magictoolbox audit verify --all` says more"
            )

    def _failed(self, error: str) -> None:
        self.last_error = error
