"""The outbox relay: every stored event, published to an Event Grid topic, at least once.

The event store is the outbox. The relay follows the feed from its checkpoint, publishes the
stored CloudEvents with azure-eventgrid's ``EventGridPublisherClient`` in batches under Event
Grid's 1 MB, and moves its checkpoint only after the topic's 200: a crash in between publishes
those events again, which every consumer shrugs off (they act on the stream, not the message),
whereas moving it first could lose them. ``run`` publishes right after each commit; ``run_once``
publishes what is pending and returns (the ``relay`` timer Function). Two relays at once may
publish an event twice, never skip one: the checkpoint only moves forward.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from events.checkpoints import StoredCheckpoint
from events.envelope import RecordedEvent
from events.following import Backoff, FeedFollower
from events.store import EventStore
from services.eventgrid.protocol import MAX_BATCH_BYTES

log = logging.getLogger(__name__)

# Event Grid counts the whole request against 1 MB; leave room for the array's brackets, commas
# and the SDK's own way of writing each event (it may reorder keys or escape differently).
BATCH_BUDGET = MAX_BATCH_BYTES - 64 * 1024
RELAY_CHECKPOINT = "relay"
MAX_BATCH_EVENTS = 1000


class Publisher(Protocol):
    """What the relay sends through: ``EventGridPublisherClient`` has this ``send``."""

    def send(self, events: Any, **kwargs: Any) -> None: ...


class Checkpoint(Protocol):
    """Where the relay keeps the last feed position the topic acknowledged."""

    def load(self) -> int: ...

    def save(self, position: int) -> None:
        """Move forward to ``position``; never backward (another relay may be ahead)."""

    def record_error(self, error: str) -> None:
        """Keep the last failure where a status command in another process can see it."""

    def close(self) -> None: ...


@dataclass
class RelayStatus:
    checkpoint: int = 0
    head: int = 0
    published: int = 0  # events acknowledged by the topic, by this process
    batches: int = 0
    failures: int = 0  # consecutive failed publishes (0 once one succeeds)
    last_error: str | None = None
    failed_at: datetime | None = None
    published_at: datetime | None = None

    @property
    def lag(self) -> int:
        return max(self.head - self.checkpoint, 0)


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive events as the CloudEvents the topic receives, and the feed position of the
    last: where the checkpoint goes once the topic has them."""

    events: list[dict[str, Any]]
    last_position: int
    first_position: int


def batches(
    events: Sequence[RecordedEvent],
    budget: int = BATCH_BUDGET,
    max_events: int = MAX_BATCH_EVENTS,
) -> Iterator[Batch]:
    """Consecutive runs of ``events``, in feed order, each under ``budget`` bytes as JSON (the
    measure Event Grid applies to the 1 MB limit)."""
    docs: list[dict[str, Any]] = []
    first = previous = 0
    size = 2  # the array's brackets
    for event in events:
        doc = event.to_cloudevent()
        doc_size = len(orjson.dumps(doc)) + 1  # and a comma
        if docs and (size + doc_size > budget or len(docs) >= max_events):
            yield Batch(docs, previous, first)
            docs, size = [], 2
        if not docs:
            first = event.position
        docs.append(doc)
        size += doc_size
        previous = event.position
    if docs:
        yield Batch(docs, previous, first)


class _PerCallOptionNotice(logging.Filter):
    """The SDK hands a send's keyword options to its CloudEvent model too, which logs each as
    "not a known attribute … will be ignored" while the pipeline honours it: true and useless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.args
            and record.args[0] == "retry_total"
            and "is not a known attribute" in str(record.msg)
        )


logging.getLogger("azure.eventgrid._legacy._generated._serialization").addFilter(
    _PerCallOptionNotice()
)


def event_grid_client(endpoint: str, key: str = "") -> Publisher:
    """The SDK's publisher for a topic: the access key if given, else DefaultAzureCredential
    (managed identity on Azure, with the EventGrid Data Sender role on the topic)."""
    from azure.eventgrid import EventGridPublisherClient

    credential: Any
    if key:
        from azure.core.credentials import AzureKeyCredential

        credential = AzureKeyCredential(key)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return EventGridPublisherClient(endpoint, credential)


class OutboxRelay:
    def __init__(
        self,
        store: EventStore,
        publisher: Publisher,
        checkpoint: Checkpoint,
        *,
        read_batch: int = 2000,
        budget: int = BATCH_BUDGET,
        backoff: Backoff | None = None,
        idle_timeout: float = 1.0,  # the longest sleep in wait_for, so ``stop`` is honoured soon
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.checkpoint = checkpoint
        self.budget = budget
        self.idle_timeout = idle_timeout
        self.status = RelayStatus()
        self.follower = FeedFollower(
            store,
            self._publish,
            start=checkpoint.load,
            name="relay",
            batch_size=read_batch,
            backoff=backoff,
            on_error=self._failed,
            idle_timeout=idle_timeout,
        )
        self._lock = threading.Lock()

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Publish everything after the checkpoint, then return how many events went out.

        A failed publish is retried with backoff until it succeeds or ``stop`` is set.
        """
        with self._lock:  # one pass at a time per relay: two would publish everything twice
            before = self.status.published
            self.follower.position = None  # another relay may have moved the checkpoint
            self.follower.catch_up(stop)
            position = self.follower.position or 0
            self.status.checkpoint = position
            self.status.head = max(self.store.head_position(), position)
            return self.status.published - before

    def run(self, stop: threading.Event) -> None:
        """Publish as events commit until ``stop`` is set."""
        while not stop.is_set():
            self.run_once(stop)
            self.store.wait_for(self.status.checkpoint, timeout=self.idle_timeout)

    def close(self) -> None:
        self.checkpoint.close()

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="relay", daemon=True)
        thread.start()
        return thread, stop

    def _publish(self, events: Sequence[RecordedEvent], after: int) -> int:
        """Send ``events`` batch by batch, moving the checkpoint after each 200; the position
        reached. A failure after some batches went out returns what they reached (the next pass
        tries the rest at once); a failure of the first batch raises, and the follower backs off.
        """
        reached: int | None = None
        for batch in batches(events, self.budget):
            try:
                # The relay retries with its own backoff and records each failure; the SDK's
                # own retries would only hide them (per call: the client drops pipeline
                # options given to its constructor for basic topics).
                self.publisher.send(batch.events, retry_total=0)
            except Exception:
                if reached is None:
                    raise
                return reached
            reached = batch.last_position
            self.checkpoint.save(reached)
            self.status.checkpoint = reached
            self.status.published += len(batch.events)
            self.status.batches += 1
            self.status.failures = 0
            self.status.published_at = datetime.now(UTC)
        assert reached is not None  # events is never empty
        return reached

    def _failed(self, error: str) -> None:
        self.status.failures = self.follower.failures
        self.status.last_error = error
        self.status.failed_at = datetime.now(UTC)
        self.checkpoint.record_error(error)


def relay_to(store: EventStore, database_url: str, endpoint: str, key: str = "") -> OutboxRelay:
    """The relay publishing ``store`` to the topic at ``endpoint``, with its checkpoint in the
    database at ``database_url`` (beside the read models', where ``projections status`` and
    ``relay status`` show it)."""
    checkpoint = StoredCheckpoint(database_url, RELAY_CHECKPOINT)
    checkpoint.setup()
    return OutboxRelay(store, event_grid_client(endpoint, key), checkpoint)
