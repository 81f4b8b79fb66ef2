"""The relay at Event Grid's 1 MB: batches measured in the bytes the SDK sends (``é`` is 6 of them,
``😀`` 12, ``漢`` 6), and an event that can never be published set aside as a dead letter, so one
user's oversized event does not stall everyone else's.

The topic is the emulator (``services.eventgrid.emulator``), which refuses a publish over 1 MB
counted in the bytes it receives, as Event Grid does; the SDK is the real azure-eventgrid.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError

from events.checkpoints import StoredCheckpoint
from events.database import Database
from events.envelope import (
    NewEvent,
    RecordedEvent,
    execution_stream,
    execution_subject,
    new_event,
)
from events.following import Backoff
from events.opening import open_store
from events.store import EventStore
from services.eventgrid import relay_deadletters
from services.eventgrid.protocol import MAX_BATCH_BYTES
from services.eventgrid.relay import (
    BATCH_BUDGET,
    OutboxRelay,
    batches,
    event_grid_client,
    request_size,
    sent_size,
)
from services.eventgrid.relay_deadletters import StoredDeadLetters
from tests.events.factories import hash_text_submitted
from tests.services.eventgrid.conftest import Run
from tests.services.eventgrid.receiver import Receiver
from tests.services.eventgrid.support import KEY, make_config, publisher, subscription
from tests.services.recording_topic import KEY as RECORDING_KEY, recording_topic

CHARACTERS = {"é": 6, "😀": 12, "漢字": 12}  # each, as the SDK escapes it: bytes on the wire
WHOLE_SECOND = datetime(2026, 12, 2, 18, 0, 5, tzinfo=UTC)
FAST = Backoff(first=0.01, cap=0.05)


def submitted(text: str, owner: str = "7", at: datetime | None = None) -> NewEvent:
    execution_id = uuid.uuid4()
    payload = hash_text_submitted(text, owner, execution_id)
    subject = execution_subject("encoders", "hash-text", execution_id)
    return new_event(payload, subject=subject, time=at or datetime.now(UTC))


def append(store: EventStore, event: NewEvent) -> RecordedEvent:
    stream = execution_stream(uuid.UUID(json.loads(event.data_json)["execution_id"]))
    store.append(stream, [event])
    return store.read_stream(stream)[0]


def as_recorded(event: NewEvent, position: int) -> RecordedEvent:
    """``event`` as the store will hand it to the relay at ``position`` (to measure it first)."""
    stream = execution_stream(uuid.UUID(json.loads(event.data_json)["execution_id"]))
    return RecordedEvent(
        position,
        stream,
        1,
        event.id,
        event.type,
        event.schema_version,
        event.time,
        event.data_json,
        event.source,
        event.subject,
        event.metadata_json,
        b"",
    )


def alone(event: RecordedEvent) -> int:
    """The bytes of a publish of ``event`` alone, as the relay measures it."""
    return request_size([sent_size(event.to_cloudevent())])


def at_the_edge(character: str, position: int, over: int = 0) -> NewEvent:
    """A Submitted event of ``character`` repeated, padded with ASCII so that publishing it alone
    takes exactly ``BATCH_BUDGET + over`` bytes as the SDK sends them."""
    at = datetime.now(UTC).replace(microsecond=0)  # the time's length, fixed
    base = alone(as_recorded(submitted("", at=at), position))
    count, pad = divmod(BATCH_BUDGET + over - base, CHARACTERS[character])
    event = submitted(character * count + "x" * pad, at=at)
    assert alone(as_recorded(event, position)) == BATCH_BUDGET + over
    return event


@pytest.fixture
def sqlite_store(sqlite_store_url: str) -> Iterator[EventStore]:
    store = open_store(sqlite_store_url)
    store.setup()
    try:
        yield store
    finally:
        store.close()


def relay_for(store: EventStore, database_url: str, endpoint: str, **options) -> OutboxRelay:
    checkpoint = StoredCheckpoint(database_url, "relay")
    checkpoint.setup()
    dead_letters = StoredDeadLetters(database_url)
    dead_letters.setup()
    return OutboxRelay(
        store,
        event_grid_client(endpoint, options.pop("key", KEY)),
        checkpoint,
        dead_letters=dead_letters,
        **options,
    )


def stored_dead_letters(database_url: str) -> list[relay_deadletters.RelayDeadLetter]:
    with Database(database_url) as db:
        return relay_deadletters.latest(db, 100)


# -- the measure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "plain ASCII",
        "é" * 1000,
        "😀" * 1000,
        "漢字" * 1000,
        'mixed: é😀漢字 "quoted" back\\slash \n\t\x01 \u2028 \x7f',
    ],
    ids=["ascii", "e-acute", "emoji", "cjk", "mixed"],
)
def test_the_relay_measures_a_batch_in_exactly_the_bytes_the_sdk_sends(
    sqlite_store: EventStore, text: str
) -> None:
    times = [
        WHOLE_SECOND,  # the SDK adds ".000"
        WHOLE_SECOND.replace(microsecond=120000),  # and writes ".120" for ".120000"
        WHOLE_SECOND.replace(microsecond=123456),
        WHOLE_SECOND.replace(microsecond=100),
    ]
    for at in times:
        append(sqlite_store, submitted(text, at=at))
    [batch] = list(batches(sqlite_store.read_all(0)))

    with recording_topic() as topic:
        event_grid_client(topic.endpoint, RECORDING_KEY).send(batch.events, retry_total=0)

    assert topic.sizes == [batch.size]
    assert [e["id"] for e in topic.events] == [e["id"] for e in batch.events]
    utf8 = len(json.dumps(batch.events, ensure_ascii=False).encode())
    if text != "plain ASCII":
        assert batch.size > utf8  # what the relay measured before, and why it stalled


def test_a_batch_is_cut_where_the_escaped_bytes_reach_the_limit(sqlite_store: EventStore) -> None:
    # 400,000 UTF-8 bytes of é each: three fit in 1 MB as UTF-8, but escaped each is 1.2 MB.
    for _ in range(3):
        append(sqlite_store, submitted("é" * 100_000))  # 600 KB escaped: one a batch
    cut = list(batches(sqlite_store.read_all(0)))

    assert [len(b.events) for b in cut] == [1, 1, 1]
    assert all(b.size <= BATCH_BUDGET for b in cut)


# -- at the edge of the limit, against the emulator's 1 MB --------------------------------------


@pytest.mark.parametrize("character", list(CHARACTERS), ids=["e-acute", "emoji", "cjk"])
def test_an_event_exactly_at_the_limit_is_published_and_one_byte_over_is_a_dead_letter(
    sqlite_store: EventStore, sqlite_store_url: str, run_emulator: Run, character: str
) -> None:
    with Receiver() as subscriber:
        server = run_emulator(make_config(subscription("audit", subscriber.url)))
        under = append(sqlite_store, at_the_edge(character, 1))
        over = append(sqlite_store, at_the_edge(character, 2, over=1))
        assert (alone(under), alone(over)) == (MAX_BATCH_BYTES, MAX_BATCH_BYTES + 1)
        # The edge is the topic's: the event one byte over is refused when sent alone.
        with pytest.raises(HttpResponseError) as refused:
            publisher(server).send([over.to_cloudevent()])
        assert refused.value.status_code == 413
        assert server.status()["accepted"] == 0

        relay = relay_for(sqlite_store, sqlite_store_url, server.endpoint)
        relay.run_once()

        assert server.status()["accepted"] == 1
        assert [e["id"] for e in subscriber.wait_for(1)] == [str(under.id)]
        assert relay.status.published == 1
        [letter] = stored_dead_letters(sqlite_store_url)
        assert (letter.event_id, letter.position) == (str(over.id), over.position)
        assert letter.size == MAX_BATCH_BYTES + 1
        assert "over Event Grid's" in letter.reason
        assert relay.checkpoint.load() == over.position
        assert relay.status.failures == 0


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_one_users_oversized_event_does_not_hold_back_anyone_elses(
    request: pytest.FixtureRequest, run_emulator: Run, database: str
) -> None:
    """The issue's case: 340,000 times é is 680 KB as UTF-8 (under the store's 1 MB) and 2 MB as
    the SDK sends it. Before, every publish was a 413, retried forever, and nobody's later event
    went out."""
    database_url = request.getfixturevalue(
        "sqlite_store_url" if database == "sqlite" else "pg_store_url"
    )
    store = open_store(database_url)
    store.setup()
    try:
        with Receiver() as subscriber:
            server = run_emulator(make_config(subscription("audit", subscriber.url)))
            others = [append(store, submitted(f"hello {i}", owner="8")) for i in range(3)]
            attack = append(store, submitted("é" * 340_000, owner="7"))
            others += [append(store, submitted(f"after {i}", owner="8")) for i in range(3)]
            relay = relay_for(store, database_url, server.endpoint)
            stop = threading.Event()
            threading.Timer(20, stop.set).start()  # a stalled relay would retry until then

            relay.run_once(stop)

            assert not stop.is_set(), "the relay did not finish its pass"
            stop.set()
            delivered = sorted(e["id"] for e in subscriber.wait_for(len(others)))
            assert delivered == sorted(str(e.id) for e in others)
            [letter] = stored_dead_letters(database_url)
            assert (letter.event_id, letter.position) == (str(attack.id), attack.position)
            assert letter.size > 2_000_000 and letter.event_type == attack.type
            assert relay.checkpoint.load() == store.head_position()
            assert relay.status.failures == 0 and relay.status.last_error is None

            relay.run_once()  # a second pass, or a second relay: nothing again, no new letter
            assert len(stored_dead_letters(database_url)) == 1
            assert server.status()["accepted"] == len(others)
            relay.close()
    finally:
        store.close()


def test_a_topic_stricter_than_the_measure_splits_the_batch_and_sets_aside_only_the_refused(
    sqlite_store: EventStore, sqlite_store_url: str, run_emulator: Run
) -> None:
    """Should Event Grid ever count more strictly than ``sent_size``, its 413 is the last word:
    a batch it refuses is sent again in halves, and only an event refused alone is given up."""
    with Receiver() as subscriber:
        server = run_emulator(make_config(subscription("audit", subscriber.url)))
        small = [append(sqlite_store, submitted(f"small {i}")) for i in range(4)]
        large = append(sqlite_store, submitted("x" * 550_000 + "é" * 100_000))  # 1.15 MB sent
        small += [append(sqlite_store, submitted(f"small {i}")) for i in range(4, 8)]
        # A relay that believes 4 MB fit in a publish: the emulator refuses past 1 MB.
        relay = relay_for(sqlite_store, sqlite_store_url, server.endpoint, budget=4 * 2**20)
        assert len(list(batches(sqlite_store.read_all(0), relay.budget))) == 1

        relay.run_once()

        assert sorted(e["id"] for e in subscriber.wait_for(8)) == sorted(str(e.id) for e in small)
        [letter] = stored_dead_letters(sqlite_store_url)
        assert letter.event_id == str(large.id)
        assert "413 to it alone" in letter.reason
        assert relay.checkpoint.load() == sqlite_store.head_position()


def test_other_failures_are_retried_never_dead_lettered(
    sqlite_store: EventStore, sqlite_store_url: str
) -> None:
    event = append(sqlite_store, submitted("é" * 1000))
    with recording_topic() as topic:
        topic.fail_next = [503, 400, 500]
        relay = relay_for(
            sqlite_store, sqlite_store_url, topic.endpoint, key=RECORDING_KEY, backoff=FAST
        )
        relay.run_once()

        assert topic.refused == 3
        assert topic.ids() == [str(event.id)]
        assert stored_dead_letters(sqlite_store_url) == []


def test_a_dead_letter_recorded_twice_keeps_one_row(sqlite_store_url: str) -> None:
    """A relay stopped between the record and the checkpoint records the event again."""
    letters = StoredDeadLetters(sqlite_store_url)
    letters.setup()
    letter = relay_deadletters.RelayDeadLetter(
        "id-1", 7, "Submitted", "/tools/x", 2_000_000, "too large", datetime.now(UTC)
    )
    letters.add(letter)
    letters.add(letter)
    letters.close()

    with Database(sqlite_store_url) as db:
        assert relay_deadletters.count(db) == 1
        assert relay_deadletters.latest(db)[0].event_id == "id-1"
