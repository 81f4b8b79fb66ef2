"""The outbox relay: every stored event reaches the topic through the real azure-eventgrid SDK,
in batches under 1 MB, with the checkpoint moved only after the topic said 200."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from events.catalog import Submitted
from events.checkpoints import StoredCheckpoint
from events.envelope import MAX_EVENT_BYTES, new_event
from events.following import Backoff
from events.store import EventStore
from services.eventgrid.protocol import MAX_BATCH_BYTES
from services.eventgrid.relay import OutboxRelay, batches, event_grid_client
from tests.events.factories import execution_events, progress
from tests.services.recording_topic import KEY, RecordingTopic, recording_topic

FAST = Backoff(first=0.01, cap=0.05)


@pytest.fixture
def topic() -> Iterator[RecordingTopic]:
    with recording_topic() as t:
        yield t


@pytest.fixture
def checkpoint(store_url: str) -> StoredCheckpoint:
    c = StoredCheckpoint(store_url, "relay")
    c.setup()
    return c


def relay_to(
    topic: RecordingTopic, store: EventStore, checkpoint: StoredCheckpoint, key: str = KEY
) -> OutboxRelay:
    return OutboxRelay(store, event_grid_client(topic.endpoint, key), checkpoint, backoff=FAST)


def fill(store: EventStore, executions: int = 3) -> list[str]:
    ids = []
    for _ in range(executions):
        stream, events = execution_events()
        store.append(stream, events)
        ids += [str(e.id) for e in events]
    return ids


def test_every_event_reaches_the_topic_as_the_cloudevent_the_store_holds(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint
) -> None:
    ids = fill(store)
    relay = relay_to(topic, store, checkpoint)

    assert relay.run_once() == len(ids)

    assert topic.ids() == ids  # in feed order, each once
    stored = {str(e.id): e for e in store.read_all(0)}
    for published in topic.events:
        original = stored[published["id"]].to_cloudevent()
        for name in ("specversion", "source", "type", "subject", "data", "streamversion"):
            assert published[name] == original[name], name
        assert published["correlationid"] == original["correlationid"]
    assert checkpoint.load() == store.head_position()
    assert relay.run_once() == 0  # nothing is published twice by one relay
    assert len(topic.events) == len(ids)


def test_batches_stay_under_event_grids_one_megabyte(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint
) -> None:
    big = {"text": "x" * (MAX_EVENT_BYTES // 4)}  # four of these fill a megabyte
    for _ in range(9):
        store.append(f"execution-{uuid.uuid4()}", [new_event(_submitted(big))])

    relay_to(topic, store, checkpoint).run_once()

    assert len(topic.events) == 9
    assert len(topic.batches) >= 3
    assert max(topic.sizes) < MAX_BATCH_BYTES
    assert all(len(batch.events) <= 4 for batch in batches(store.read_all(0)))


def _submitted(params: dict) -> Submitted:
    return Submitted(
        execution_id=uuid.uuid4(),
        tool="json-format",
        category="data",
        tool_version="1",
        mode="sync",
        params=params,
        owner="7",
    )


def test_a_failing_topic_is_retried_and_the_checkpoint_waits_for_the_200(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint
) -> None:
    ids = fill(store, 2)
    topic.fail_next = [503, 500, 503]
    relay = relay_to(topic, store, checkpoint)
    seen: list[int] = []
    original_save = checkpoint.save

    def save(position: int) -> None:
        seen.append(topic.refused)
        original_save(position)

    checkpoint.save = save  # type: ignore[method-assign]

    relay.run_once()

    assert topic.refused == 3
    assert seen == [3]  # moved once, after the three refusals
    assert topic.ids() == ids
    assert relay.status.failures == 0
    assert relay.status.last_error is not None and "503" in relay.status.last_error


def test_a_wrong_key_publishes_nothing_and_the_error_is_recorded(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint, store_url: str
) -> None:
    fill(store, 1)
    relay = relay_to(topic, store, checkpoint, key="wrong")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()

    assert relay.run_once(stop) == 0

    assert topic.events == []
    assert checkpoint.load() == 0
    assert relay.status.failures >= 2
    assert "401" in (relay.status.last_error or "") or "Authentication" in (
        relay.status.last_error or ""
    )
    from events import checkpoints
    from events.database import Database

    with Database(store_url) as db:
        stored = checkpoints.read_all(db)["relay"]
    assert stored.last_error == relay.status.last_error  # what `relay status` shows


def test_the_running_relay_publishes_right_after_each_commit(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint
) -> None:
    relay = relay_to(topic, store, checkpoint)
    thread, stop = relay.start()
    try:
        time.sleep(0.2)
        ids = fill(store, 1)
        deadline = time.monotonic() + 5
        while topic.ids() != ids and time.monotonic() < deadline:
            time.sleep(0.01)
        assert topic.ids() == ids
    finally:
        stop.set()
        thread.join(5)


def test_two_relays_at_once_never_move_the_checkpoint_back(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint
) -> None:
    stream = "execution-burst"
    store.append(stream, progress(600))
    first, second = relay_to(topic, store, checkpoint), relay_to(topic, store, checkpoint)
    first.read_batch = second.read_batch = 50
    threads = [threading.Thread(target=r.run_once) for r in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert checkpoint.load() == store.head_position()
    assert set(topic.ids()) == {str(e.id) for e in store.read_all(0, limit=10_000)}
    checkpoint.save(5)  # a slow relay reporting an old position
    assert checkpoint.load() == store.head_position()


def test_without_a_key_the_relay_asks_for_a_bearer_token_and_never_publishes_unsigned(
    store: EventStore, topic: RecordingTopic, checkpoint: StoredCheckpoint
) -> None:
    """No key configured: the relay authenticates as the managed identity (DefaultAzureCredential,
    a bearer token), as the Bicep's role assignment expects. Bearer tokens go only over https, so
    against this http topic nothing is sent at all, and the relay says why."""
    fill(store, 1)
    relay = OutboxRelay(store, event_grid_client(topic.endpoint), checkpoint, backoff=FAST)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()

    assert relay.run_once(stop) == 0

    assert topic.batches == [] and topic.refused == 0  # not one request reached the topic
    assert "Bearer token" in (relay.status.last_error or "")
    assert checkpoint.load() == 0
