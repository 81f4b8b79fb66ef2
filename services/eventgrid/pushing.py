"""Push delivery to one subscription, with Event Grid's handshake, retries and dead letters.

Each subscription is a ``Subscriber`` with its own queue, HTTP client and at most
``max_in_flight`` pushes at once, so a failing endpoint only delays itself. It queues events while
its handshake runs (``pending``), then delivers (``active``) or, when the endpoint never passed,
drops them (``inactive``). 2xx succeeds; 400, 401, 403 and 413 dead-letter at once; anything else
is retried on Event Grid's schedule (times ``retry_scale``) until ``maxDeliveryAttempts`` or the
time to live. Not emulated: jitter, probation of failing endpoints, the dead-letter delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from services.eventgrid import protocol
from services.eventgrid.deadletters import DeadLetterWriter, blob_name, dead_letter_record
from services.eventgrid.filters import lookup
from services.eventgrid.handshakes import abuse_protection_handshake, validation_handshake
from services.eventgrid.subscriptions import Subscription, Topic, delivery_event

log = logging.getLogger(__name__)

NON_RETRIABLE = frozenset({400, 401, 403, 413})
HANDSHAKE_DELAYS = (1.0, 2.0, 4.0, 8.0)  # between handshake attempts: five in ~15 s
DELIVERY_TIMEOUT = 30.0
MAX_IN_FLIGHT = 16

PENDING, ACTIVE, INACTIVE = "pending", "active", "inactive"
MAX_ATTEMPTS = "MaxDeliveryAttemptsExceeded"
TTL_EXCEEDED = "TimeToLiveExceeded"


@dataclass(slots=True)
class Accepted:
    """An event accepted for this subscription, already in its delivery schema."""

    event: dict[str, Any]
    body: bytes
    data_version: str
    received: float  # time.monotonic() when the emulator accepted it: the TTL counts from here
    published: datetime


@dataclass(frozen=True, slots=True)
class Result:
    status: int | None  # None: no HTTP answer at all
    outcome: str
    at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Subscriber:
    """One subscription's queue, handshake, pushes and counters (in memory only)."""

    def __init__(
        self,
        subscription: Subscription,
        topic: Topic,
        *,
        retry_scale: float = 1.0,
        delivery_timeout: float = DELIVERY_TIMEOUT,
        handshake_delays: Sequence[float] = HANDSHAKE_DELAYS,
        max_in_flight: int = MAX_IN_FLIGHT,
        validation_url: Callable[[str, str], str] | None = None,
    ) -> None:
        self.subscription = subscription
        self.topic = topic
        self.retry_scale = retry_scale
        self.delivery_timeout = delivery_timeout
        self.handshake_delays = tuple(handshake_delays)
        self.max_in_flight = max_in_flight
        self._validation_url = validation_url or (lambda name, code: "")
        self.validation_code = str(uuid.uuid4()).upper()
        self.state = PENDING
        self.handshake_error: str | None = None
        self.delivered = self.retried = self.dead_lettered = self.dropped = 0
        self.in_flight = 0
        self.queued = 0  # accepted, not yet delivered, dead-lettered or dropped
        self._writer = (
            DeadLetterWriter(subscription.dead_letter) if subscription.dead_letter else None
        )
        self._queue: asyncio.Queue[Accepted] = asyncio.Queue()
        self._validated = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(max_in_flight)

    @property
    def name(self) -> str:
        return self.subscription.name

    def start(self) -> None:
        """Handshake, then deliver; call from the event loop that will run it."""
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=self.max_in_flight + 1),
            follow_redirects=False,  # Event Grid does not follow them either
            trust_env=False,  # a proxy from the environment has no business with local pushes
        )
        self._spawn(self._run())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    @property
    def shown_endpoint(self) -> str:
        """The endpoint without its query, which may carry a key (as Event Grid shows only
        ``endpointBaseUrl``)."""
        return self.subscription.endpoint.split("?", 1)[0]

    def status(self) -> dict[str, Any]:
        return {
            "endpoint": self.shown_endpoint,
            "deliverySchema": self.subscription.delivery_schema,
            "state": self.state,
            "active": self.state == ACTIVE,
            "handshakeError": self.handshake_error,
            "delivered": self.delivered,
            "retried": self.retried,
            "deadLettered": self.dead_lettered,
            "dropped": self.dropped,
            "queued": self.queued,
            "inFlight": self.in_flight,
        }

    def offer(self, events: Sequence[protocol.DeliveredEvent], received: float) -> int:
        """Queue the events this subscription's filter lets through; how many it took."""
        if self.state == INACTIVE:
            return 0
        published = datetime.now(UTC)
        taken = 0
        for event in events:
            if not self.subscription.filter.matches(event.type, event.subject, event.raw):
                continue
            outgoing = delivery_event(event.raw, self.topic, self.subscription.delivery_schema)
            version = event.data_version if event.schema == protocol.EVENTGRID else ""
            body = orjson.dumps(outgoing)
            self._queue.put_nowait(Accepted(outgoing, body, version, received, published))
            taken += 1
        self.queued += taken
        return taken

    def validate(self, code: str) -> bool:
        """A GET of the validation URL: Event Grid's manual validation."""
        if self.state != PENDING or code != self.validation_code:
            return False
        self._validated.set()
        return True

    # The handshake and the dispatcher

    async def _run(self) -> None:
        error = await self._handshake()
        if error is not None:
            self.state, self.handshake_error = INACTIVE, error
            dropped = self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self.queued -= dropped
            self.dropped += dropped
            log.error(
                "subscription %s is inactive: its endpoint failed the handshake (%s)%s",
                self.name,
                error,
                f"; {dropped} queued events dropped" if dropped else "",
            )
            return
        self.state, self.handshake_error = ACTIVE, None
        log.info("subscription %s is active (%s)", self.name, self.shown_endpoint)
        carried: Accepted | None = None  # taken from the queue, but too big for the last batch
        while True:
            await self._slots.acquire()
            try:
                first = carried or await self._queue.get()
            except BaseException:
                self._slots.release()
                raise
            batch, carried = self._batch(first)
            self._spawn(self._deliver(batch))  # it owns the slot now

    def _batch(self, first: Accepted) -> tuple[list[Accepted], Accepted | None]:
        """Up to maxEventsPerBatch events that are already queued, within the preferred size
        (a single event over it still goes, alone); and the one that did not fit, if any."""
        batch, size = [first], len(first.body)
        limit = self.subscription.preferred_batch_kb * 1024
        while len(batch) < self.subscription.max_events_per_batch and not self._queue.empty():
            following = self._queue.get_nowait()
            if size + len(following.body) > limit:
                return batch, following
            batch.append(following)
            size += len(following.body)
        return batch, None

    async def _handshake(self) -> str | None:
        delays = list(self.handshake_delays)
        while True:
            error = await self._handshake_once()
            if error is None or self._validated.is_set():
                return None
            self.handshake_error = error
            if not delays:
                return error
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._validated.wait(), delays.pop(0))
                return None

    async def _handshake_once(self) -> str | None:
        assert self._client is not None
        headers = self._attribute_headers(None)
        endpoint = self.subscription.endpoint
        if self.subscription.delivery_schema == protocol.CLOUDEVENTS:
            return await abuse_protection_handshake(
                self._client, endpoint, headers=headers, timeout=self.delivery_timeout
            )
        return await validation_handshake(
            self._client,
            endpoint,
            topic_id=self.topic.resource_id,
            code=self.validation_code,
            validation_url=self._validation_url(self.name, self.validation_code),
            headers={**headers, protocol.AEG_SUBSCRIPTION_NAME: self.name},
            timeout=self.delivery_timeout,
        )

    # One batch, from its first attempt to its end

    async def _deliver(self, batch: list[Accepted]) -> None:
        holding, attempts, last = True, 0, None
        expires = min(a.received for a in batch) + self.subscription.event_ttl_minutes * 60
        try:
            while True:
                if not holding:
                    await self._slots.acquire()
                    holding = True
                if time.monotonic() >= expires:
                    break
                last = await self._attempt(batch, attempts)
                attempts += 1
                self._slots.release()
                holding = False
                if last.succeeded:
                    self._finish(batch)
                    self.delivered += len(batch)
                    log.info(
                        "%s: delivered %d event(s) on attempt %d (%s)",
                        self.name,
                        len(batch),
                        attempts,
                        last.status,
                    )
                    return
                if last.status in NON_RETRIABLE:
                    reason = f"UndeliverableDueToHttp{last.outcome}"
                    await self._dead_letter(batch, reason, attempts, last)
                    return
                if attempts >= self.subscription.max_delivery_attempts:
                    await self._dead_letter(batch, MAX_ATTEMPTS, attempts, last)
                    return
                delay = protocol.retry_delay(attempts, self.retry_scale)
                now = time.monotonic()
                if now + delay >= expires:
                    await asyncio.sleep(max(0.0, expires - now))
                    break
                log.warning(
                    "%s: attempt %d of %d event(s) failed (%s), next in %.3g s",
                    self.name,
                    attempts,
                    len(batch),
                    last.outcome,
                    delay,
                )
                await asyncio.sleep(delay)
                self.retried += len(batch)
        finally:
            if holding:
                self._slots.release()
        await self._dead_letter(batch, TTL_EXCEEDED, attempts, last)

    async def _attempt(self, batch: list[Accepted], attempts: int) -> Result:
        assert self._client is not None
        cloudevents = self.subscription.delivery_schema == protocol.CLOUDEVENTS
        headers = {
            **self._attribute_headers(batch[0].event),
            "Content-Type": (
                f"{protocol.CLOUDEVENTS_BATCH}; charset=utf-8"
                if cloudevents
                else "application/json; charset=utf-8"
            ),
            protocol.AEG_EVENT_TYPE: protocol.NOTIFICATION,
            protocol.AEG_DELIVERY_COUNT: str(attempts),
            protocol.AEG_SUBSCRIPTION_NAME: self.name,
            "aeg-data-version": batch[0].data_version,
            "aeg-metadata-version": "1",
        }
        body = b"[" + b",".join(a.body for a in batch) + b"]"
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.delivery_timeout):
                response = await self._client.post(
                    self.subscription.endpoint, content=body, headers=headers
                )
            status = response.status_code
            return Result(status, protocol.outcome(status), datetime.now(UTC))
        except TimeoutError:
            return Result(None, "TimedOut", datetime.now(UTC))
        except httpx.HTTPError as exc:
            log.debug("%s: push failed: %r", self.name, exc)
            return Result(None, "GenericError", datetime.now(UTC))
        finally:
            self.in_flight -= 1

    def _attribute_headers(self, event: Mapping[str, Any] | None) -> dict[str, str]:
        headers = {}
        for attribute in self.subscription.attributes:
            if not attribute.dynamic:
                headers[attribute.name] = attribute.value
            elif event is not None:
                value = lookup(event, attribute.source_field)
                if isinstance(value, bool):
                    headers[attribute.name] = "true" if value else "false"
                elif isinstance(value, str | int | float):  # Event Grid's JSON scalars
                    headers[attribute.name] = str(value)
        return headers

    def _finish(self, batch: list[Accepted]) -> None:
        self.queued -= len(batch)

    async def _dead_letter(
        self, batch: list[Accepted], reason: str, attempts: int, last: Result | None
    ) -> None:
        self._finish(batch)
        what = f"{len(batch)} event(s): {reason} after {attempts} attempt(s)"
        if last is not None:
            what += f", last {last.outcome}"
        if self._writer is None:
            self.dropped += len(batch)
            log.warning("%s: dropped %s (no dead-letter destination)", self.name, what)
            return
        records = [
            dead_letter_record(
                a.event,
                self.subscription.delivery_schema,
                reason=reason,
                attempts=attempts,
                outcome=last.outcome if last else None,
                status=last.status if last else None,
                published=a.published,
                last_attempt=last.at if last else None,
            )
            for a in batch
        ]
        try:
            where = await self._writer.write_soon(blob_name(self.topic.name, self.name), records)
        except Exception:
            self.dropped += len(batch)
            log.exception("%s: could not dead-letter %s; dropped", self.name, what)
            return
        self.dead_lettered += len(batch)
        log.warning("%s: dead-lettered %s -> %s", self.name, what, where)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: delivery task failed", self.name, exc_info=task.exception())
