"""Checking the audit anchors against the events: what ``audit verify`` adds to the hash chains.

The chains say whether each stream is self-consistent; this says whether the store still holds
what was anchored (events.anchors): every anchor must verify with the key, every anchored stream
must still end exactly where it was anchored with the same hash, and the feed up to the anchored
position must hash to the anchored value with as many events and streams. Each difference is one
``Finding`` with a line that names what was done: a truncated stream, a missing stream, a chain
rewritten and recomputed, an anchor removed, altered or put back from an earlier time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from events.anchors import (
    FEED_TABLE,
    STREAM_COLUMNS,
    STREAM_TABLE,
    AnchorKey,
    FeedAnchor,
    feed_link,
    read_feed_anchor,
    stream_anchor,
)
from events.database import Database
from events.envelope import GENESIS_HASH

PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Finding:
    """One way the store differs from its anchors, as one line for a person."""

    kind: str  # TRUNCATED, MISSING STREAM, RECOMPUTED CHAIN, ANCHOR ALTERED, …
    stream: str | None
    detail: str

    @property
    def line(self) -> str:
        return f"{self.kind}: {self.stream + ': ' if self.stream else ''}{self.detail}"


@dataclass(frozen=True, slots=True)
class AnchorReport:
    feed: FeedAnchor | None  # the stored feed anchor (None: nothing anchored yet)
    streams_checked: int  # stream anchors compared with their streams
    unanchored: int  # events after the anchored position: nothing vouches for them yet
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def check(db: Database, key: AnchorKey, stream: str | None = None) -> AnchorReport:
    """Compare the anchors with the events: of every stream and the whole feed, or of one
    stream (then the feed's hash is not recomputed: that takes reading every event)."""
    findings: list[Finding] = []
    feed = read_feed_anchor(db)
    anchored = 0 if feed is None else feed.position
    if feed is not None:
        if not feed.verifies(key):
            findings.append(
                Finding("ANCHOR ALTERED", None, _unverified("the feed anchor", feed.key_id, key))
            )
        elif stream is None:
            findings += _check_feed(db, feed)
    checked = 0
    for row in _stream_anchors(db, stream):
        checked += 1
        finding = _check_stream(row, key)
        if finding is not None:
            findings.append(finding)
    if feed is None and checked:
        gone = f"{checked} streams are anchored but the feed anchor is gone"
        findings.append(Finding("ANCHOR REMOVED", None, gone))
    findings += _unanchored_streams(db, anchored, stream)
    where, params = ("WHERE position > ?", (anchored,))
    if stream is not None:
        where, params = where + " AND stream = ?", (anchored, stream)
    unanchored = db.execute(f"SELECT count(*) FROM events {where}", params)[0][0]
    return AnchorReport(feed, checked, int(unanchored), findings)


def _unverified(what: str, key_id: str, key: AnchorKey) -> str:
    if key_id != key.id:
        return (
            f"{what} was signed with another key (id {key_id or 'none'}; this key is {key.id}): "
            "forged, or the audit key changed"
        )
    return f"{what} does not verify with this key: altered or forged without the key"


def _check_feed(db: Database, feed: FeedAnchor) -> list[Finding]:
    """Recompute the feed's running hash up to the anchored position, in position order."""
    running, events, streams, after = GENESIS_HASH, 0, 0, 0
    while True:
        rows = db.execute(
            "SELECT position, stream, version, hash FROM events WHERE position > ? "
            "AND position <= ? ORDER BY position LIMIT ?",
            (after, feed.position, PAGE),
        )
        for position, name, version, event_hash in rows:
            running = feed_link(running, position, name, version, bytes(event_hash))
            events += 1
            streams += version == 0
        if len(rows) < PAGE:
            break
        after = rows[-1][0]
    if (running, events, streams) == (bytes(feed.feed_hash), feed.events, feed.streams):
        return []
    if events < feed.events or streams < feed.streams:
        what = "events were removed"
    elif events > feed.events:
        what = "events were added below the anchor"
    else:
        what = "events were rewritten or replaced"
    return [
        Finding(
            "FEED CHANGED",
            None,
            f"up to position {feed.position} the anchor counts {feed.events} events in "
            f"{feed.streams} streams; the store now has {events} events in {streams} streams "
            f"and their hash differs: {what}",
        )
    ]


def _stream_anchors(db: Database, stream: str | None) -> Iterator[tuple]:
    """Each stream anchor with the hash of its stream's event at the anchored version and the
    stream's last version now (None, None when the stream has no events)."""
    columns = ", ".join(f"a.{c}" for c in STREAM_COLUMNS)
    select = (
        f"SELECT {columns}, e.hash, "
        "(SELECT max(x.version) FROM events x WHERE x.stream = a.stream) "
        f"FROM {STREAM_TABLE} a "
        "LEFT JOIN events e ON e.stream = a.stream AND e.version = a.version "
    )
    if stream is not None:
        yield from db.execute(select + "WHERE a.stream = ?", (stream,))
        return
    after = ""
    while True:
        rows = db.execute(select + "WHERE a.stream > ? ORDER BY a.stream LIMIT ?", (after, PAGE))
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _check_stream(row: tuple, key: AnchorKey) -> Finding | None:
    anchor = stream_anchor(row)
    stored_hash, last = row[6], row[7]
    where = f"anchored at version {anchor.version} (position {anchor.position})"
    if not anchor.verifies(key):
        return Finding(
            "ANCHOR ALTERED", anchor.stream, _unverified("its anchor", anchor.key_id, key)
        )
    if last is None:
        return Finding("MISSING STREAM", anchor.stream, f"{where}, but it has no events now")
    if stored_hash is None:
        return Finding("TRUNCATED", anchor.stream, f"{where}, but it now ends at version {last}")
    if bytes(stored_hash) != anchor.hash:
        return Finding(
            "RECOMPUTED CHAIN",
            anchor.stream,
            f"{where}, but the stored hash of that version differs from the anchored one: "
            "its events were rewritten and the chain recomputed",
        )
    return None


def _unanchored_streams(db: Database, anchored: int, stream: str | None) -> list[Finding]:
    """Streams with events under the feed anchor whose own anchor is missing or older: an
    anchor removed, or an earlier one put back."""
    where, params = "WHERE e.position <= ?", (anchored,)
    if stream is not None:
        where, params = where + " AND e.stream = ?", (anchored, stream)
    rows = db.execute(
        f"SELECT e.stream, max(e.version), (SELECT a.version FROM {STREAM_TABLE} a "
        f"WHERE a.stream = e.stream) FROM events e {where} GROUP BY e.stream "
        f"HAVING max(e.version) > coalesce((SELECT a.version FROM {STREAM_TABLE} a "
        "WHERE a.stream = e.stream), -1)",
        params,
    )
    findings = []
    for name, last, version in rows:
        if version is None:
            detail = (
                f"version {last} lies under the feed anchor (position {anchored}) but the "
                "stream has no anchor"
            )
            findings.append(Finding("ANCHOR REMOVED", name, detail))
        else:
            detail = (
                f"its anchor is at version {version}, but version {last} lies under the feed "
                f"anchor (position {anchored}): an earlier anchor was put back"
            )
            findings.append(Finding("OLD ANCHOR", name, detail))
    return findings


def table_present(db: Database) -> bool:
    """Whether the anchor tables exist (``magictoolbox migrate`` makes them)."""
    try:
        db.execute(f"SELECT 1 FROM {FEED_TABLE} WHERE 1 = 0")
    except Exception:
        return False
    return True
