"""The outbox relay: every stored event, published to an Event Grid topic, at least once.

The event store is the outbox. The relay follows the feed from its checkpoint, publishes the
stored CloudEvents with azure-eventgrid's ``EventGridPublisherClient`` in batches under Event
Grid's 1 MB, and moves its checkpoint only after the topic's 200: a crash in between publishes
those events again, which every consumer shrugs off (they act on the stream, not the message),
whereas moving it first could lose them. ``run`` publishes right after each commit; ``run_once``
publishes what is pending and returns (the ``relay`` timer Function). Two relays at once may
publish an event twice, never skip one: the checkpoint only moves forward.

Batches are measured in the bytes the SDK sends, which is not the stored JSON: it writes with
``json.dumps``, ASCII only, so ``é`` travels as ``\u00e9`` (6 bytes for UTF-8's 2), ``漢`` as 6
for 3 and ``😀`` as a surrogate pair, 12 for 4. An event that cannot be published even alone (over
the limit in those bytes, or refused with a 413 when sent alone) is a dead letter
(``services.eventgrid.relay_deadletters``): recorded, passed by the checkpoint, and the relay goes
on with everyone else's events. Only that reason sets an event aside; any other failure is retried.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from events.checkpoints import StoredCheckpoint
from events.envelope import RecordedEvent
from events.following import Backoff, FeedFollower, describe
from events.store import EventStore
from services.eventgrid.protocol import MAX_BATCH_BYTES
from services.eventgrid.relay_deadletters import RelayDeadLetter, StoredDeadLetters

log = logging.getLogger(__name__)

# Event Grid counts the whole request against 1 MB, in the bytes the SDK sends (``sent_size``).
BATCH_BUDGET = MAX_BATCH_BYTES
RELAY_CHECKPOINT = "relay"
MAX_BATCH_EVENTS = 1000
TOO_LARGE = 413


class Publisher(Protocol):
    """What the relay sends through: ``EventGridPublisherClient`` has this ``send``."""

    def send(self, events: Any, **kwargs: Any) -> None: ...


class DeadLetters(Protocol):
    """Where the relay sets aside the events it can never publish (``StoredDeadLetters``)."""

    def add(self, letter: RelayDeadLetter) -> None:
        """Record ``letter``, durably, before the checkpoint moves past it."""

    def close(self) -> None: ...


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
    dead_letters: int = 0  # events set aside by this process (``relay status`` counts them all)
    last_dead_letter: RelayDeadLetter | None = None

    @property
    def lag(self) -> int:
        return max(self.head - self.checkpoint, 0)


def sent_size(doc: dict[str, Any]) -> int:
    """The bytes azure-eventgrid sends for the CloudEvent ``doc`` in a batch. It writes the body
    with ``json.dumps`` (ASCII only, ", " and ": " between items, the same keys in another order)
    after parsing ``time`` and writing it back its own way, so that is what is measured."""
    time = doc.get("time")
    if isinstance(time, str):
        doc = {**doc, "time": sdk_time(time)}
    return len(json.dumps(doc))  # ASCII: as many bytes as characters


def sdk_time(time: str) -> str:
    """An RFC 3339 time as the SDK's serializer writes it: UTC, at least three fractional
    digits, trailing zeros cut (``...:05Z`` becomes ``...:05.000Z``, ``.120000`` ``.120``)."""
    at = datetime.fromisoformat(time.replace("Z", "+00:00").replace("z", "+00:00"))
    at = at.astimezone(UTC) if at.tzinfo else at
    fraction = str(at.microsecond).rjust(6, "0").rstrip("0").ljust(3, "0")
    return f"{at:%Y-%m-%dT%H:%M:%S}.{fraction}Z"


def request_size(sizes: Sequence[int]) -> int:
    """The bytes of a publish carrying events of ``sizes``: the array's brackets and ", "
    between its items."""
    return 2 + sum(sizes) + 2 * max(len(sizes) - 1, 0)


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive events as the CloudEvents the topic receives, with the feed position and the
    ``sent_size`` of each: the checkpoint goes to ``last_position`` once the topic has them."""

    events: list[dict[str, Any]]
    positions: list[int]
    sizes: list[int]

    @property
    def first_position(self) -> int:
        return self.positions[0]

    @property
    def last_position(self) -> int:
        return self.positions[-1]

    @property
    def size(self) -> int:
        """The bytes of the publish request, as Event Grid counts them against its limit."""
        return request_size(self.sizes)

    def split(self) -> tuple[Batch, Batch]:
        half = len(self.events) // 2
        return (
            Batch(self.events[:half], self.positions[:half], self.sizes[:half]),
            Batch(self.events[half:], self.positions[half:], self.sizes[half:]),
        )


def batches(
    events: Sequence[RecordedEvent],
    budget: int = BATCH_BUDGET,
    max_events: int = MAX_BATCH_EVENTS,
) -> Iterator[Batch]:
    """Consecutive runs of ``events``, in feed order, each a publish of at most ``budget`` bytes
    as the SDK sends them. An event over ``budget`` even alone comes as a batch of its own (whose
    ``size`` says so): it can never be published."""
    docs: list[dict[str, Any]] = []
    positions: list[int] = []
    sizes: list[int] = []
    total = 0  # request_size(sizes), kept as we go
    for event in events:
        doc = event.to_cloudevent()
        size = sent_size(doc)
        if docs and (total + 2 + size > budget or len(docs) >= max_events):
            yield Batch(docs, positions, sizes)
            docs, positions, sizes = [], [], []
        total = request_size([size]) if not docs else total + 2 + size
        docs.append(doc)
        positions.append(event.position)
        sizes.append(size)
        if total > budget:  # alone, and still too large
            yield Batch(docs, positions, sizes)
            docs, positions, sizes = [], [], []
    if docs:
        yield Batch(docs, positions, sizes)


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
        dead_letters: DeadLetters | None = None,  # None: in the log and ``status`` only
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.checkpoint = checkpoint
        self.dead_letters = dead_letters
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
        if self.dead_letters is not None:
            self.dead_letters.close()

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
                self._send(batch)
            except Exception:
                if reached is None:
                    raise
                return reached
            reached = batch.last_position
            self.checkpoint.save(reached)
            self.status.checkpoint = reached
            self.status.batches += 1
            self.status.failures = 0
            self.status.published_at = datetime.now(UTC)
        assert reached is not None  # events is never empty
        return reached

    def _send(self, batch: Batch) -> None:
        """Publish ``batch``, or set its one event aside when it can never be published.

        A 413 for several events sends them again in halves (the topic may count more strictly
        than ``sent_size``); a 413 for one event alone makes it a dead letter. Any other failure
        raises, to be retried: only size is a reason to give an event up.
        """
        if len(batch.events) == 1 and batch.size > self.budget:
            self._set_aside(batch, f"{batch.size} bytes as sent, over Event Grid's {self.budget}")
            return
        try:
            # The relay retries with its own backoff and records each failure; the SDK's
            # own retries would only hide them (per call: the client drops pipeline
            # options given to its constructor for basic topics).
            self.publisher.send(batch.events, retry_total=0)
        except Exception as exc:
            if getattr(exc, "status_code", None) != TOO_LARGE:
                raise
            if len(batch.events) == 1:
                self._set_aside(batch, f"the topic answered 413 to it alone: {describe(exc)}")
                return
            for half in batch.split():
                self._send(half)
            return
        self.status.published += len(batch.events)

    def _set_aside(self, batch: Batch, reason: str) -> None:
        """Record the one event of ``batch`` as a dead letter, before the checkpoint passes it."""
        doc = batch.events[0]
        letter = RelayDeadLetter(
            event_id=str(doc["id"]),
            position=batch.first_position,
            event_type=str(doc.get("type", "")),
            subject=str(doc.get("subject", "")),
            size=batch.size,
            reason=reason,
            dead_at=datetime.now(UTC),
        )
        if self.dead_letters is not None:
            self.dead_letters.add(letter)
        self.status.dead_letters += 1
        self.status.last_dead_letter = letter
        log.warning(
            "relay: event %s at position %d can never be published (%s): a dead letter",
            letter.event_id,
            letter.position,
            reason,
        )

    def _failed(self, error: str) -> None:
        self.status.failures = self.follower.failures
        self.status.last_error = error
        self.status.failed_at = datetime.now(UTC)
        self.checkpoint.record_error(error)


def relay_to(store: EventStore, database_url: str, endpoint: str, key: str = "") -> OutboxRelay:
    """The relay publishing ``store`` to the topic at ``endpoint``, with its checkpoint in the
    database at ``database_url`` (beside the read models', where ``projections status`` and
    ``relay status`` show it), and its dead letters beside it."""
    checkpoint = StoredCheckpoint(database_url, RELAY_CHECKPOINT)
    checkpoint.setup()
    dead_letters = StoredDeadLetters(database_url)
    dead_letters.setup()
    return OutboxRelay(
        store, event_grid_client(endpoint, key), checkpoint, dead_letters=dead_letters
    )
