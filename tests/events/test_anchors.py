"""Keyed anchors see what the hash chains cannot: a stream cut short, a stream gone, a chain
rewritten and recomputed (issue 16, point 7). Every test runs on SQLite and PostgreSQL.

Given a store whose anchors caught up with the feed, when an attacker without the key changes
the tables with raw SQL, then the chains may still verify but ``check`` names what was done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from events.anchor_check import AnchorReport, check
from events.anchors import STREAM_TABLE, Anchorer, AnchorError, AnchorKey, StreamAnchor
from events.database import Database
from events.opening import open_store
from events.store import EventStore
from tests.events.factories import execution_events, progress
from tests.events.tampering import delete_last_event, delete_stream, raw, rewrite_and_rechain

KEY = AnchorKey(b"the operator's audit key")
MALLORY = '{"attempt":1,"deadline":"2030-01-01T00:00:00Z","worker_id":"mallory"}'


@pytest.fixture
def anchorer(store: EventStore, store_url: str) -> Iterator[Anchorer]:
    worker = Anchorer(store, store_url, KEY, interval=0.01, idle_timeout=0.1)
    try:
        yield worker
    finally:
        worker.close()


def runs(store: EventStore, n: int = 3) -> list[str]:
    """``n`` executions of four events each; their stream names."""
    names = []
    for _ in range(n):
        stream, events = execution_events()
        store.append(stream, events)
        names.append(stream)
    return names


def checked(store_url: str, stream: str | None = None, key: AnchorKey = KEY) -> AnchorReport:
    with Database(store_url) as db:
        return check(db, key, stream)


def lines(report: AnchorReport) -> list[str]:
    return [finding.line for finding in report.findings]


def test_an_untouched_store_matches_its_anchors(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    runs(store)

    assert anchorer.run_once() == 12
    report = checked(store_url)

    assert report.ok, lines(report)
    assert report.feed is not None
    assert (report.feed.position, report.feed.events, report.feed.streams) == (
        store.head_position(),
        12,
        3,
    )
    assert report.streams_checked == 3
    assert report.unanchored == 0


def test_deleting_a_streams_last_event_shows_as_truncation(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    intact, victim, _ = runs(store)
    anchorer.run_once()

    delete_last_event(store_url, victim)

    fresh = open_store(store_url)
    try:
        assert fresh.verify_all().ok  # the chains alone see nothing
    finally:
        fresh.close()
    report = checked(store_url)
    found = lines(report)
    assert [f.kind for f in report.findings] == ["FEED CHANGED", "TRUNCATED"], found
    position = store.read_stream(victim)[-1].position
    assert (
        f"TRUNCATED: {victim}: anchored at version 3 (position {position + 1}), "
        "but it now ends at version 2" in found
    )
    assert "events were removed" in found[0]
    assert checked(store_url, intact).ok
    assert not checked(store_url, victim).ok


def test_deleting_a_whole_stream_shows_as_a_missing_stream(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    _, victim, _ = runs(store)
    anchorer.run_once()

    delete_stream(store_url, victim)

    report = checked(store_url)
    assert [f.kind for f in report.findings] == ["FEED CHANGED", "MISSING STREAM"], lines(report)
    assert report.findings[1].stream == victim
    assert "now has 8 events in 2 streams" in report.findings[0].detail
    assert [f.kind for f in checked(store_url, victim).findings] == ["MISSING STREAM"]


def test_a_rewritten_payload_with_its_chain_recomputed_shows(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    _, victim, _ = runs(store)
    anchorer.run_once()

    rewrite_and_rechain(store_url, victim, 2, MALLORY)

    fresh = open_store(store_url)
    try:
        assert fresh.read_stream(victim)[2].data["worker_id"] == "mallory"
        assert fresh.verify_all().ok  # a recomputed chain is a valid chain
    finally:
        fresh.close()
    report = checked(store_url)
    assert [f.kind for f in report.findings] == ["FEED CHANGED", "RECOMPUTED CHAIN"], lines(report)
    assert report.findings[1].stream == victim
    assert "rewritten or replaced" in report.findings[0].detail


def test_an_anchor_forged_without_the_key_does_not_verify(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    """The attacker cuts the stream and writes it a new anchor with a key of their own."""
    _, victim, _ = runs(store)
    anchorer.run_once()
    version = delete_last_event(store_url, victim) - 1
    head = store.read_stream(victim)[version]
    forged = StreamAnchor(victim, version, head.position, head.hash, "", b"").signed(
        AnchorKey(b"a guess")
    )

    with raw(store_url) as db:
        db.execute(
            f"UPDATE {STREAM_TABLE} SET version = ?, position = ?, hash = ?, key_id = ?, mac = ? "
            "WHERE stream = ?",
            (forged.version, forged.position, forged.hash, KEY.id, forged.mac, victim),
        )

    report = checked(store_url, victim)
    assert [f.kind for f in report.findings] == ["ANCHOR ALTERED"], lines(report)
    assert "does not verify with this key" in report.findings[0].detail


def test_removing_a_streams_anchor_with_the_stream_still_shows_in_the_feed(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    intact, victim, _ = runs(store)
    anchorer.run_once()

    delete_stream(store_url, victim)
    with raw(store_url) as db:
        db.execute(f"DELETE FROM {STREAM_TABLE} WHERE stream = ?", (victim,))
        db.execute(f"DELETE FROM {STREAM_TABLE} WHERE stream = ?", (intact,))

    report = checked(store_url)
    assert [f.kind for f in report.findings] == ["FEED CHANGED", "ANCHOR REMOVED"], lines(report)
    assert report.findings[1].stream == intact  # the removed stream has left no trace but this
    assert "now has 8 events in 2 streams" in report.findings[0].detail


def test_an_earlier_anchor_put_back_over_a_cut_stream_shows_in_the_feed(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    """The attacker kept a copy of the stream's anchor from before its last event, cuts that
    event and puts the old anchor back: the stream's own anchor agrees, the feed's does not."""
    stream, events = execution_events()
    store.append(stream, events[:3])
    anchorer.run_once()
    with raw(store_url) as db:
        kept = db.execute(f"SELECT * FROM {STREAM_TABLE} WHERE stream = ?", (stream,))[0]
    store.append(stream, events[3:])
    anchorer.run_once()

    delete_last_event(store_url, stream)
    with raw(store_url) as db:
        db.execute(f"DELETE FROM {STREAM_TABLE} WHERE stream = ?", (stream,))
        db.execute(f"INSERT INTO {STREAM_TABLE} VALUES (?, ?, ?, ?, ?, ?)", tuple(kept))

    assert checked(store_url, stream).ok  # one stream's check has no way to know
    report = checked(store_url)
    assert [f.kind for f in report.findings] == ["FEED CHANGED"], lines(report)


def test_events_after_the_last_anchor_are_counted_not_vouched_for(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    runs(store, 2)
    anchorer.run_once()
    late = runs(store, 1)[0]

    report = checked(store_url)
    assert report.ok and report.unanchored == 4
    delete_stream(store_url, late)  # removal after the last anchor: the limit of anchors
    assert checked(store_url).ok

    assert anchorer.run_once() == 0
    assert checked(store_url).unanchored == 0


def test_the_anchorer_refuses_to_sign_a_chain_rewritten_since_its_anchor(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    stream, events = execution_events()
    store.append(stream, events[:3])
    anchorer.run_once()
    rewrite_and_rechain(store_url, stream, 2, MALLORY)
    fresh = open_store(store_url)
    try:
        fresh.append(stream, events[3:])  # the writer chains on from the rewritten head
    finally:
        fresh.close()

    with pytest.raises(AnchorError, match="does not extend the stream's anchored head"):
        anchorer.run_once()
    assert [f.kind for f in checked(store_url).findings] == ["FEED CHANGED", "RECOMPUTED CHAIN"]


def test_the_anchorer_refuses_to_build_on_a_feed_anchor_it_cannot_verify(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    runs(store, 1)
    anchorer.run_once()
    with raw(store_url) as db:
        db.execute("UPDATE audit_feed_anchor SET events = events - 1")
    runs(store, 1)

    with pytest.raises(AnchorError, match="does not verify"):
        anchorer.run_once()
    assert [f.kind for f in checked(store_url).findings] == ["ANCHOR ALTERED"]


def test_another_key_is_told_apart_from_a_forgery(
    store: EventStore, store_url: str, anchorer: Anchorer
) -> None:
    runs(store, 1)
    anchorer.run_once()

    report = checked(store_url, key=AnchorKey(b"next year's key"))

    assert {f.kind for f in report.findings} == {"ANCHOR ALTERED"}
    assert all("signed with another key" in f.detail for f in report.findings)


def test_anchorers_running_at_once_keep_one_consistent_anchor(
    store: EventStore, store_url: str
) -> None:
    """The web's anchorer and the Functions timer's, or two web instances, on one store."""
    workers = [Anchorer(store, store_url, KEY, interval=0.005, idle_timeout=0.05) for _ in range(2)]
    running = [w.start() for w in workers]
    try:
        writers = [threading.Thread(target=runs, args=(store, 15)) for _ in range(3)]
        for writer in writers:
            writer.start()
        store.append("counter-1", progress(30))
        for writer in writers:
            writer.join()
        deadline = time.monotonic() + 30
        while checked(store_url).unanchored and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for thread, stop in running:
            stop.set()
            thread.join(5)
        for worker in workers:
            worker.close()

    report = checked(store_url)
    assert report.ok, lines(report)
    assert report.feed is not None and (report.feed.events, report.feed.streams) == (210, 46)
    assert report.unanchored == 0
    assert all(w.last_error is None for w in workers), [w.last_error for w in workers]
