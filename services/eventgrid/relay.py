"""The outbox relay: every stored event, published to an Event Grid topic, at least once.

The event store is the outbox. The relay reads the global feed after its checkpoint, publishes
the events as CloudEvents with azure-eventgrid's ``EventGridPublisherClient`` in batches under
Event Grid's 1 MB limit, and moves its checkpoint only after the topic answered 200. A crash
between the 200 and the checkpoint write publishes those events again on restart; every consumer
is idempotent (it acts on the execution's stream, not on the message), so that is harmless,
whereas moving the checkpoint first could lose events for good.

It publishes right after commit — it sleeps in ``store.wait_for``, which LISTEN/NOTIFY (or the
SQLite poll) ends as soon as an event is readable — and also sweeps: ``run_once`` publishes
whatever is pending and returns, which is what the ``relay`` timer Function calls, so events are
published even while no long-running relay is up. Several relays may run at once (the web
process and the timer): they may publish an event twice, never skip one, because a checkpoint
only ever moves forward.

A failed publish is retried with exponential backoff (``Backoff``) until it succeeds; the error
and the time are kept in ``status`` for ``magictoolbox relay status``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from events.envelope import RecordedEvent
from events.store import EventStore
from services.eventgrid.protocol import MAX_BATCH_BYTES

log = logging.getLogger(__name__)

# Event Grid counts the whole request against 1 MB; leave room for the array's brackets, commas
# and the SDK's own way of writing each event (it may reorder keys or escape differently).
BATCH_BUDGET = MAX_BATCH_BYTES - 64 * 1024
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


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds to wait after the ``n``-th consecutive failed publish: doubling, capped."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.first * self.factor ** max(failures - 1, 0), self.cap)


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


@dataclass
class OutboxRelay:
    store: EventStore
    publisher: Publisher
    checkpoint: Checkpoint
    read_batch: int = 2000
    budget: int = BATCH_BUDGET
    backoff: Backoff = field(default_factory=Backoff)
    idle_timeout: float = 1.0  # the longest sleep in wait_for, so ``stop`` is honoured soon
    status: RelayStatus = field(default_factory=RelayStatus)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Publish everything after the checkpoint, then return how many events went out.

        A failed publish is retried with backoff until it succeeds or ``stop`` is set.
        """
        stop = stop or threading.Event()
        with self._lock:  # one pass at a time per relay: two would publish everything twice
            position = self.checkpoint.load()
            self.status.checkpoint = position
            sent = 0
            while not stop.is_set():
                events = self.store.read_all(position, limit=self.read_batch)
                self.status.head = max(self.store.head_position(), position)
                if not events:
                    break
                for batch in batches(events, self.budget):
                    if not self._publish(batch, stop):
                        return sent
                    position = batch.last_position
                    self.checkpoint.save(position)
                    self.status.checkpoint = position
                    sent += len(batch.events)
            return sent

    def run(self, stop: threading.Event) -> None:
        """Publish as events commit until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.run_once(stop)
            except Exception as exc:  # the store or the checkpoint failed: keep going
                self._record_failure(exc)
                log.exception("relay: pass failed; trying again")
                stop.wait(self.backoff.delay(self.status.failures))
                continue
            self.store.wait_for(self.status.checkpoint, timeout=self.idle_timeout)

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="relay", daemon=True)
        thread.start()
        return thread, stop

    def _publish(self, batch: Batch, stop: threading.Event) -> bool:
        while True:
            try:
                # The relay retries with its own backoff and records each failure; the SDK's
                # own retries would only hide them (per call: the client drops pipeline
                # options given to its constructor for basic topics).
                self.publisher.send(batch.events, retry_total=0)
            except Exception as exc:
                self._record_failure(exc)
                delay = self.backoff.delay(self.status.failures)
                log.warning(
                    "relay: publishing %d events after position %d failed (%s); retrying in %.3gs",
                    len(batch.events),
                    batch.first_position - 1,
                    self.status.last_error,
                    delay,
                )
                if stop.wait(delay):
                    return False
                continue
            now = datetime.now(UTC)
            self.status.published += len(batch.events)
            self.status.batches += 1
            self.status.failures = 0
            self.status.published_at = now
            return True

    def _record_failure(self, exc: Exception) -> None:
        lines = str(exc).strip().splitlines()
        self.status.failures += 1
        self.status.last_error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        self.status.failed_at = datetime.now(UTC)
        try:
            self.checkpoint.record_error(self.status.last_error)
        except Exception:
            log.exception("relay: could not record the failure")
