"""The event store contract: every test here runs against SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

import pytest

from events.catalog import Progress, Submitted
from events.envelope import new_event
from events.errors import (
    DuplicateEventId,
    EventSchemaError,
    EventTooLarge,
    InvalidStreamName,
    UnknownEventType,
    WrongExpectedVersion,
)
from events.opening import open_store
from events.store import ANY, NO_STREAM, EventStore
from tests.events.factories import execution_events, hash_text_submitted, progress


def snapshot(store: EventStore) -> list[tuple]:
    return [(e.position, e.stream, e.version, e.id) for e in store.read_all(0, limit=100_000)]


# -- appending ---------------------------------------------------------------------------------


def test_new_stream_gets_versions_from_zero_and_reads_back_exactly(store: EventStore) -> None:
    stream, events = execution_events()
    result = store.append(stream, events, NO_STREAM)

    assert (result.first_version, result.last_version) == (0, 3)
    assert result.last_position - result.first_position >= 3
    read = store.read_stream(stream)
    assert [e.version for e in read] == [0, 1, 2, 3]
    assert [e.id for e in read] == [e.id for e in events]
    assert [e.type for e in read] == [e.type for e in events]
    assert [e.time for e in read] == [e.time for e in events]
    assert read[0].subject == events[0].subject
    assert read[0].metadata == dict(events[0].metadata)
    assert read[0].payload() == Submitted.model_validate_json(events[0].data_json)
    positions = [e.position for e in read]
    assert positions == sorted(positions) and len(set(positions)) == 4


def test_an_append_returns_its_events_exactly_as_the_stream_reads_them(
    store: EventStore,
) -> None:
    """A writer knows its stream after appending without reading it back."""
    stream, events = execution_events()
    first = store.append(stream, events[:1], NO_STREAM)
    rest = store.append(stream, events[1:], 0)

    assert first.recorded + rest.recorded == tuple(store.read_stream(stream))
    assert [e.position for e in rest.recorded] == list(
        range(rest.first_position, rest.last_position + 1)
    )
    assert store.verify(stream).ok
    assert store.append(stream, events[1:], 0).recorded == ()  # a repeat: nothing new written


def test_one_event_at_a_time_with_exact_expected_versions(store: EventStore) -> None:
    stream, events = execution_events()
    for version, event in enumerate(events):
        result = store.append(stream, [event], version - 1)
        assert result.first_version == version
    assert store.stream_version(stream) == 3
    assert store.verify(stream).ok


def test_wrong_expected_version_is_refused_with_the_actual_version(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events[:2], NO_STREAM)
    before = snapshot(store)

    for expected in (0, 2, 7, NO_STREAM):
        with pytest.raises(WrongExpectedVersion) as err:
            store.append(stream, events[2:], expected)
        assert err.value.actual == 1
        assert err.value.code == "wrong_expected_version"
    assert snapshot(store) == before


def test_expected_version_on_a_stream_that_does_not_exist(store: EventStore) -> None:
    with pytest.raises(WrongExpectedVersion) as err:
        store.append("execution-nothing-here", progress(1), 0)
    assert err.value.actual == NO_STREAM
    assert store.stream_version("execution-nothing-here") == NO_STREAM
    assert store.read_stream("execution-nothing-here") == []


def test_any_version_appends_at_the_end(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events[:1], ANY)
    store.append(stream, events[1:], ANY)
    assert [e.version for e in store.read_stream(stream)] == [0, 1, 2, 3]


def test_read_stream_from_a_version(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events, NO_STREAM)
    assert [e.version for e in store.read_stream(stream, from_version=2)] == [2, 3]


# -- idempotency -------------------------------------------------------------------------------


def test_appending_the_same_events_again_returns_the_first_result(store: EventStore) -> None:
    stream, events = execution_events()
    first = store.append(stream, events[:2], NO_STREAM)
    store.append(stream, events[2:], 1)
    before = snapshot(store)

    again = store.append(stream, events[:2], NO_STREAM)  # a retry, after the stream moved on

    assert again.duplicate
    assert (again.first_position, again.last_position) == (
        first.first_position,
        first.last_position,
    )
    assert (again.first_version, again.last_version) == (0, 1)
    assert snapshot(store) == before


def test_same_id_with_different_content_is_an_error(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events, NO_STREAM)
    before = snapshot(store)
    forged = replace(events[3], data_json=events[3].data_json.replace("42", "43"))

    with pytest.raises(DuplicateEventId) as err:
        store.append(stream, [forged], ANY)
    assert err.value.event_id == events[3].id
    assert snapshot(store) == before


def test_a_batch_that_only_partly_repeats_stored_ids_is_refused_whole(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events[:2], NO_STREAM)
    before = snapshot(store)
    with pytest.raises(DuplicateEventId):
        store.append(stream, events[1:], 1)
    assert snapshot(store) == before


def test_an_id_twice_in_one_batch_is_refused(store: EventStore) -> None:
    stream, events = execution_events()
    with pytest.raises(DuplicateEventId):
        store.append(stream, [events[0], events[0]], NO_STREAM)
    assert snapshot(store) == []


# -- bad input ---------------------------------------------------------------------------------


def test_payload_that_fails_its_schema_is_refused_before_anything_is_written(
    store: EventStore,
) -> None:
    good = progress(1)[0]
    bad_payload = replace(good, data_json='{"percent": 250, "message": ""}')
    not_json = replace(good, data_json="{percent")
    for bad in (bad_payload, not_json):
        with pytest.raises(EventSchemaError) as err:
            store.append("execution-bad", [bad], NO_STREAM)
        assert err.value.code == "event_schema_invalid"
    assert snapshot(store) == []


def test_unknown_event_type_is_refused(store: EventStore) -> None:
    bogus = replace(progress(1)[0], type="MagicToolbox.Execution.Exploded")
    with pytest.raises(UnknownEventType) as err:
        store.append("execution-bad", [bogus], NO_STREAM)
    assert err.value.code == "unknown_event_type"
    assert snapshot(store) == []


def test_event_over_one_megabyte_is_refused(store: EventStore) -> None:
    huge = new_event(Progress(percent=1, message="x"))
    huge = replace(huge, data_json='{"percent": 1, "message": "' + "x" * (1024 * 1024) + '"}')
    with pytest.raises(EventTooLarge) as err:
        store.append("execution-big", [huge], NO_STREAM)
    assert err.value.size > err.value.limit == 1024 * 1024
    assert snapshot(store) == []


def test_bad_stream_names_are_refused(store: EventStore) -> None:
    for name in ("", "has space", "x" * 201, "semi;colon", "-leading-dash"):
        with pytest.raises(InvalidStreamName):
            store.append(name, progress(1), ANY)
    assert snapshot(store) == []


def test_a_payload_stored_under_an_old_schema_reads_as_the_current_model(
    store: EventStore,
) -> None:
    old = replace(progress(1)[0], schema_version=1, data_json='{"fraction": 0.25}')
    store.append("execution-old", [old], NO_STREAM)
    (read,) = store.read_stream("execution-old")
    assert read.schema_version == 1
    assert read.payload() == Progress(percent=25.0, message="")
    assert store.verify("execution-old").ok


# -- the global feed ---------------------------------------------------------------------------


def test_read_all_pages_through_every_event_in_position_order(store: EventStore) -> None:
    written = []
    for _ in range(5):
        stream, events = execution_events()
        store.append(stream, events, NO_STREAM)
        written += [e.id for e in events]

    seen, after = [], 0
    while page := store.read_all(after, limit=3):
        assert len(page) <= 3
        seen += page
        after = page[-1].position
    assert [e.id for e in seen] == written
    assert store.head_position() == seen[-1].position
    assert store.read_all(store.head_position()) == []


def test_read_all_filters_by_type_and_stream_prefix(store: EventStore) -> None:
    s1, e1 = execution_events()
    s2, e2 = execution_events()
    store.append(s1, e1, NO_STREAM)
    store.append(s2, e2, NO_STREAM)
    store.append("audit-1", progress(2), NO_STREAM)

    submitted = store.read_all(0, types=["MagicToolbox.Execution.Submitted"])
    assert [e.stream for e in submitted] == [s1, s2]
    both = store.read_all(0, types=[e1[0].type, e1[3].type], stream_prefix=s2)
    assert [e.id for e in both] == [e2[0].id, e2[3].id]
    assert [e.stream for e in store.read_all(0, stream_prefix="audit-")] == ["audit-1"] * 2
    assert store.read_all(0, stream_prefix="AUDIT-") == []  # prefixes are case-sensitive


def test_head_position_of_an_empty_store_is_zero(store: EventStore) -> None:
    assert store.head_position() == 0
    assert store.read_all(0) == []


def test_streams_lists_each_stream_once(store: EventStore) -> None:
    s1, e1 = execution_events()
    store.append(s1, e1, NO_STREAM)
    store.append("audit-1", progress(3), NO_STREAM)
    assert list(store.streams()) == [s1, "audit-1"]
    assert list(store.streams(prefix="audit")) == ["audit-1"]


def test_wait_for_times_out_without_events(store: EventStore) -> None:
    started = time.monotonic()
    assert store.wait_for(store.head_position(), timeout=0.3) is False
    assert 0.25 <= time.monotonic() - started < 2


def test_wait_for_wakes_when_another_thread_appends(store: EventStore) -> None:
    head = store.head_position()
    timer = threading.Timer(0.2, lambda: store.append("execution-x", progress(1), ANY))
    timer.start()
    started = time.monotonic()
    try:
        assert store.wait_for(head, timeout=10) is True
    finally:
        timer.join()
    assert time.monotonic() - started < 5
    assert [e.stream for e in store.read_all(head)] == ["execution-x"]


def test_events_survive_closing_and_reopening_the_store(store: EventStore, store_url: str) -> None:
    stream, events = execution_events()
    store.append(stream, events, NO_STREAM)
    store.close()
    reopened = open_store(store_url)
    try:
        assert [e.id for e in reopened.read_stream(stream)] == [e.id for e in events]
        assert reopened.verify_all().ok
    finally:
        reopened.close()


# -- audit -------------------------------------------------------------------------------------


def test_verify_walks_every_stream_and_event(store: EventStore) -> None:
    for _ in range(3):
        stream, events = execution_events()
        store.append(stream, events[:1], NO_STREAM)
        store.append(stream, events[1:], 0)
    report = store.verify_all()
    assert report.ok and (report.streams, report.events) == (3, 12)
    assert store.verify(stream).events == 4


def test_hash_chain_links_each_event_to_the_one_before(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events[:2], NO_STREAM)
    store.append(stream, events[2:], 1)
    hashes = [e.hash for e in store.read_stream(stream)]
    assert len(set(hashes)) == 4 and all(len(h) == 32 for h in hashes)
    # The same events in another stream chain differently: a hash commits to its stream.
    other = [replace(e, id=uuid.uuid4()) for e in events]
    store.append("execution-copy", other, NO_STREAM)
    assert [e.hash for e in store.read_stream("execution-copy")] != hashes


def test_a_second_store_object_sees_and_respects_the_first_ones_appends(
    store: EventStore, store_url: str
) -> None:
    """Two processes on one database: neither may extend a stream from an outdated view of it."""
    stream, events = execution_events()
    store.append(stream, events[:2], NO_STREAM)
    assert [e.version for e in store.read_stream(stream)] == [0, 1]
    other = open_store(store_url)
    try:
        other.append(stream, events[2:3], 1)
        with pytest.raises(WrongExpectedVersion) as err:
            store.append(stream, events[3:], 1)  # this object last saw version 1
        assert err.value.actual == 2
        store.append(stream, events[3:], 2)
        assert [e.version for e in other.read_stream(stream)] == [0, 1, 2, 3]
        assert other.verify(stream).ok
    finally:
        other.close()


def test_a_large_payload_reads_back_exactly_and_is_decoded_once_for_all_readers(
    store: EventStore,
) -> None:
    # A 680 KB text to hash: every follower of the feed in a process reads this event, so the
    # stores read a large payload's column once per process and share the string.
    eid = uuid.uuid4()
    text = "é" * 340_000 + "😀 漢字"
    big = new_event(hash_text_submitted(text, execution_id=eid))
    small = new_event(Progress(percent=1, message="small"))
    stream = f"execution-{eid}"
    store.append(stream, [big, small], expected_version=NO_STREAM)

    readers: list[list] = []

    def read() -> None:
        readers.append(store.read_all(0, limit=10) + store.read_stream(stream))

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(readers) == 6
    for events in readers:
        feed, own = events[:2], events[2:]
        for first, second in (feed, own):
            assert first.data_json == big.data_json  # the exact stored text: the hash holds
            assert first.data["params"]["text"] == text
            assert second.data_json == small.data_json
    texts = {id(events[0].data_json) for events in readers}
    assert len(texts) == 1  # one string for all six readers
    mine, theirs = readers[0][0].data, readers[1][0].data
    mine["params"]["text"] = "changed"  # a reader's own copy: nobody else's changes
    assert theirs["params"]["text"] == text and readers[2][0].data["params"]["text"] == text
    assert store.verify(stream).ok
