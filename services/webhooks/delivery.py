"""One webhook delivery: check the URL again, sign, send to the checked address, record it.

The URL is checked at every delivery (``ssrf.check_url_async``: a DNS answer may have changed
since the endpoint was saved) and the request goes to the address that was checked. The lookup
runs on the worker's own resolver (``resolver``: no thread, nothing shared with other names) and
within the delivery's timeout, so a slow name holds up only its own deliveries. A success is logged
with the others that finish meanwhile (one transaction for many: the database's round trips
would otherwise set the pace); a failure schedules the next attempt (the retry schedule, or later
when a 429/503 asks with ``Retry-After``), and a 410 or failing for ``FAILING_TOO_LONG`` disables
the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from events.database import Database
from services.webhooks import messages, schedule, sender, signing
from services.webhooks.endpoints import PENDING, Endpoint, disable, get_endpoint
from services.webhooks.messages import Message
from services.webhooks.resolver import DnsResolver
from services.webhooks.sender import Outcome
from services.webhooks.ssrf import AsyncResolver, UnsafeURL, check_url_async

log = logging.getLogger(__name__)

T = TypeVar("T")
# Runs a function of the database on the dispatcher's database thread: fn(db, *args).
OnDb = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    allow_loopback_http: bool = False  # development and tests: http to 127.0.0.1
    retry_scale: float = 1.0  # times the retry schedule and the 5-day rule (tests)
    per_endpoint: int = 4  # requests in flight per endpoint
    max_in_flight: int = 64  # requests in flight in all
    lease: timedelta = timedelta(minutes=2)  # how long a claimed message is the claimer's
    timeout: float = sender.TIMEOUT
    stop_grace: float = 2.0  # on stop, in-flight requests may finish for this long
    # The worker's own DNS (never the loop's thread pool); tests hand in their own.
    resolve: AsyncResolver = field(default_factory=DnsResolver)


@dataclass
class DeliveryReport:
    """What one call did. ``failed`` counts messages given up after an attempt (their last, or a
    410); the other pending messages of an endpoint that is disabled fail without an attempt."""

    messages: int = 0  # messages made from new events
    delivered: int = 0
    retrying: int = 0  # failed attempts with another one scheduled
    failed: int = 0
    errors: int = 0  # deliveries that raised: the lease brings their messages back
    disabled: list[str] = field(default_factory=list)  # endpoint ids
    swept: int = 0  # messages deleted past retention (with their attempts)

    @property
    def attempts(self) -> int:
        return self.delivered + self.retrying + self.failed

    def add(self, other: DeliveryReport) -> None:
        self.messages += other.messages
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors += other.errors
        self.swept += other.swept
        self.disabled += [e for e in other.disabled if e not in self.disabled]


@dataclass
class Round:
    """What the lanes of one delivery run share."""

    client: httpx.AsyncClient
    slots: asyncio.Semaphore  # the global in-flight cap
    report: DeliveryReport
    now: datetime | None = None  # a fixed "now" (tests step time), else the clock
    deadline: float | None = None  # time.monotonic(): claim nothing after it
    stopping: bool = False
    # Successful attempts waiting to be logged together (``Deliveries.record_ok``).
    delivered: list[tuple[Message, Outcome, datetime, asyncio.Future[None]]] = field(
        default_factory=list
    )
    logging_delivered: bool = False
    log_task: asyncio.Task[None] | None = None

    def clock(self) -> datetime:
        return self.now or datetime.now(UTC)

    def claiming(self) -> bool:
        return not self.stopping and (self.deadline is None or time.monotonic() < self.deadline)


class Deliveries:
    def __init__(self, options: DeliveryOptions, on_db: OnDb) -> None:
        self.options = options
        self.on_db = on_db

    async def deliver(self, run: Round, endpoint: Endpoint, message: Message) -> str | None:
        """Send ``message`` and record what happened; the reason the endpoint was disabled,
        if this attempt disabled it. Frees its slot in ``run`` whatever happens."""
        try:
            outcome = await self.send(run, endpoint, message)
            if outcome.ok:
                await self.record_ok(run, message, outcome)
                status, disabled = messages.DELIVERED, None
            else:
                status, disabled = await self.on_db(
                    self.record_failure, endpoint, message, outcome, run.clock()
                )
        except Exception:
            log.exception("webhooks: delivering message %s failed", message.id)
            run.report.errors += 1
            return None
        finally:
            run.slots.release()
        if outcome.ok:
            run.report.delivered += 1
        elif status == PENDING:
            run.report.retrying += 1
        else:
            run.report.failed += 1
        if disabled and endpoint.id not in run.report.disabled:
            run.report.disabled.append(endpoint.id)
        return disabled

    async def send(self, run: Round, endpoint: Endpoint, message: Message) -> Outcome:
        """Check the URL, then POST: the lookup and the request share ``timeout``, so a name
        whose DNS is slow fails its own delivery (retried as any failure) and nobody else's."""
        started = time.monotonic()
        try:
            target = await check_url_async(
                endpoint.url,
                allow_loopback_http=self.options.allow_loopback_http,
                resolve=self.options.resolve,
                timeout=self.options.timeout,
            )
        except UnsafeURL as exc:
            took = (time.monotonic() - started) * 1000
            return replace(_REFUSED, error=f"{exc.code}: {exc}", latency_ms=took)
        left = self.options.timeout - (time.monotonic() - started)
        body = message.body.encode()
        # The receiver checks the timestamp against its own clock: always the real time.
        headers = signing.headers(
            endpoint.secrets(run.clock()), message.event_id, int(time.time()), body
        )
        return await sender.send(
            target,
            headers,
            body,
            timeout=max(left, 0.001),
            client=run.client,
            pool=message.endpoint_id,
        )

    async def record_ok(self, run: Round, message: Message, outcome: Outcome) -> None:
        """Log a success, with the others that arrive meanwhile: while the database thread
        writes one batch, the next gathers, so one transaction serves many deliveries."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run.delivered.append((message, outcome, run.clock(), done))
        if not run.logging_delivered:
            run.logging_delivered = True
            run.log_task = asyncio.create_task(self._log_delivered(run))
        await done

    async def _log_delivered(self, run: Round) -> None:
        try:
            while run.delivered:
                batch, run.delivered = run.delivered, []
                rows = [(m, o.status or 200, o.latency_ms, o.response_excerpt, at)
                        for m, o, at, _ in batch]  # fmt: skip
                try:
                    await self.on_db(messages.record_delivered, rows)
                except Exception as exc:
                    for *_, done in batch:
                        done.set_exception(exc)
                    continue
                for *_, done in batch:
                    done.set_result(None)
        finally:
            run.logging_delivered = False

    def record_failure(
        self,
        db: Database,
        endpoint: Endpoint,
        message: Message,
        outcome: Outcome,
        now: datetime,
    ) -> tuple[str, str | None]:
        """Log a failed attempt and schedule the next; disable the endpoint when it asks (410)
        or has failed too long. The message's new status and why the endpoint was disabled."""
        scale = self.options.retry_scale
        next_at = None
        if not outcome.gone:
            delay = schedule.delay_before(message.attempts + 2, scale)
            if delay is not None and outcome.status in (429, 503):
                wish = schedule.retry_after(outcome.retry_after, now)
                delay = max(delay, wish or 0.0)
            if delay is not None:
                next_at = now + timedelta(seconds=delay)
        status = messages.record_attempt(
            db,
            message,
            status=outcome.status,
            ok=False,
            latency_ms=outcome.latency_ms,
            response=outcome.response_excerpt,
            error=outcome.error,
            next_attempt_at=next_at,
            now=now,
        )
        reason = None
        if outcome.gone:
            reason = f"{endpoint.url} answered 410 Gone at {_shown(now)}"
        else:
            current = get_endpoint(db, endpoint.id)
            since = current.failing_since if current is not None and current.enabled else None
            if since is not None and now - since >= schedule.FAILING_TOO_LONG * scale:
                last = outcome.error or f"HTTP {outcome.status}"
                reason = (
                    f"failing since {_shown(since)} for {schedule.FAILING_TOO_LONG.days} days; "
                    f"last error: {last}"
                )
        if reason is not None:
            disable(db, endpoint.id, reason, now=now)
            log.warning("webhooks: endpoint %s disabled: %s", endpoint.id, reason)
        return status, reason


# An endpoint whose URL is no longer a safe target: no request is made.
_REFUSED = Outcome(
    status=None,
    ok=False,
    latency_ms=0.0,
    response_excerpt="",
    error="",
    retry_after=None,
    gone=False,
)


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
