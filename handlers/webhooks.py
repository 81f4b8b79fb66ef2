"""The user-webhook delivery worker: the event feed becomes messages, and due messages are sent.

``fan_out_pending`` turns new events into messages (``projections.webhooks.fan_out``, with its
checkpoint); the deliveries then run on one asyncio event loop, one *lane* per endpoint with at
most ``per_endpoint`` requests in flight and ``max_in_flight`` in all, so a slow endpoint only
ever holds up its own lane. Each delivery checks the URL again (``ssrf.check_url``: a DNS answer
may have changed since the endpoint was saved), signs the stored body with the endpoint's
secrets, sends it to the checked address and records the attempt with the next one's time:
the retry schedule (scaled by ``retry_scale`` for tests), or later when a 429/503 asks so with
``Retry-After``. A 410 disables the endpoint, and so does failing for ``FAILING_TOO_LONG``.

Messages are claimed with a lease before they are sent, so the web process's worker and the
timer Function never send one attempt twice, and a worker that stops (or dies) mid-send leaves
the message to whoever claims it when the lease ends: at least once, never lost. A lane claims
a few slots' worth at once (``PREFETCH``) and gives back what it did not send when it ends.

The database is used from one thread of the dispatcher's own (``Database`` is one connection),
so the event loop never waits on a commit; successes are logged in batches (one transaction for
all that finished meanwhile), since the database's round trips otherwise set the pace. DNS
lookups go to the loop's default executor. The loop is uvloop's (a dependency, for uvicorn): the
delivery loop spends its time in the HTTP client's Python, and cheaper I/O leaves it more. Each
endpoint has its own connection pool (``sender.send(pool=…)``): httpcore's pool slows down
sharply as the requests waiting on it grow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import uvloop

from events.database import Database
from events.store import EventStore
from projections import webhooks
from services.webhooks import schedule, sender, signing
from services.webhooks.sender import Outcome
from services.webhooks.ssrf import Resolver, UnsafeURL, check_url, resolve_host

log = logging.getLogger(__name__)


PREFETCH = 4  # claims take this many slots' worth of messages at once
ENDPOINT_TTL = 1.0  # seconds an endpoint's row is trusted before it is read again

T = TypeVar("T")

IDLE_TIMEOUT = 1.0  # the continuous worker looks at the feed and the queue at least this often
FIRST_BACKOFF = 0.5  # after a failed pass (the database is down), doubling up to MAX_BACKOFF
MAX_BACKOFF = 30.0
LANE_BACKOFF = 1.0  # a lane whose claim failed ends after this, so a broken one never spins


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

    @property
    def attempts(self) -> int:
        return self.delivered + self.retrying + self.failed

    def add(self, other: DeliveryReport) -> None:
        self.messages += other.messages
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors += other.errors
        self.disabled += [e for e in other.disabled if e not in self.disabled]


@dataclass
class _Pass:
    """What the lanes of one delivery run share."""

    client: httpx.AsyncClient
    slots: asyncio.Semaphore  # the global in-flight cap
    report: DeliveryReport
    now: datetime | None = None  # a fixed "now" (tests step time), else the clock
    deadline: float | None = None  # time.monotonic(): claim nothing after it
    stopping: bool = False
    # Successful attempts waiting to be logged together (see WebhookDispatcher._record_ok).
    delivered: list[tuple[webhooks.Message, Outcome, datetime, asyncio.Future[None]]] = field(
        default_factory=list
    )
    logging_delivered: bool = False
    log_task: asyncio.Task[None] | None = None

    def clock(self) -> datetime:
        return self.now or datetime.now(UTC)

    def claiming(self) -> bool:
        return not self.stopping and (self.deadline is None or time.monotonic() < self.deadline)


class _Stop(threading.Event):
    """A stop event that also wakes the worker, so that it stops at once, not within a second."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake()


@dataclass
class _Lane:
    endpoint_id: str
    kick: asyncio.Event = field(default_factory=asyncio.Event)  # more may be due: claim again
    closed: bool = False  # the endpoint is gone or off: claim nothing more
    # Claimed ahead, sent as slots free: one claim serves several deliveries. Their lease
    # (minutes) outlasts the wait; a lane that stops gives them back (webhooks.release).
    claimed: collections.deque[webhooks.Message] = field(default_factory=collections.deque)
    endpoint: webhooks.Endpoint | None = None  # as last read, at endpoint_read (monotonic)
    endpoint_read: float = 0.0


class WebhookDispatcher:
    def __init__(
        self,
        store: EventStore,
        database_url: str,
        *,
        allow_loopback_http: bool = False,
        retry_scale: float = 1.0,
        per_endpoint: int = 4,
        max_in_flight: int = 64,
        lease: timedelta = timedelta(minutes=2),
        batch_size: int = 500,
        resolve: Resolver | None = None,
        timeout: float = sender.TIMEOUT,
        stop_grace: float = 2.0,
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.allow_loopback_http = allow_loopback_http
        self.retry_scale = retry_scale
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.lease = lease
        self.batch_size = batch_size
        self.resolve = resolve or resolve_host
        self.timeout = timeout
        self.stop_grace = stop_grace  # on stop, in-flight requests may finish for this long
        self._db = Database(database_url)
        self._ready = False
        self._threads_lock = threading.Lock()
        self._db_thread: ThreadPoolExecutor | None = None
        self._feed_thread: ThreadPoolExecutor | None = None
        self._position = 0  # the feed position fanned out so far (what to wait after)
        self._loop: asyncio.AbstractEventLoop | None = None  # the continuous worker's
        self._kick: asyncio.Event | None = None
        self._feed_wait: asyncio.Future[bool] | None = None

    # -- the database, on the dispatcher's own thread --------------------------------------------

    def _executor(self, name: str) -> ThreadPoolExecutor:
        with self._threads_lock:
            attribute = f"_{name}_thread"
            executor = getattr(self, attribute)
            if executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"webhooks-{name}")
                setattr(self, attribute, executor)
            return executor

    def _with_db(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if not self._ready:
            webhooks.setup(self._db)
            self._ready = True
        return fn(self._db, *args)

    def _on_db(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor("db").submit(self._with_db, fn, args).result()

    async def _adb(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor("db"), functools.partial(self._with_db, fn, args)
        )

    def setup(self) -> None:
        """Create the webhook tables and checkpoint (also done on first use)."""
        self._on_db(lambda db: None)

    def close(self) -> None:
        """Close the connection and the threads (a later call opens them again)."""
        with self._threads_lock:
            db_thread, self._db_thread = self._db_thread, None
            feed_thread, self._feed_thread = self._feed_thread, None
        if db_thread is not None:
            db_thread.submit(self._db.close)
            db_thread.shutdown(wait=True)
        if feed_thread is not None:
            feed_thread.shutdown(wait=False)

    # -- fan-out ---------------------------------------------------------------------------------

    def fan_out_pending(self) -> int:
        """Make the messages of every event after the checkpoint; how many were made."""
        return self._on_db(self._fan_out)

    def _fan_out(self, db: Database) -> int:
        made = 0
        while True:
            position = webhooks.checkpoint(db)
            events = self.store.read_all(position, limit=self.batch_size)
            if not events:
                self._position = max(self._position, position)
                return made
            count = webhooks.fan_out(db, events, position)
            if count is None:  # another worker moved the checkpoint: read from there
                continue
            made += count
            self._position = max(self._position, events[-1].position)
            if len(events) < self.batch_size:
                return made

    # -- one-shot delivery (the timer Function, tests) -------------------------------------------

    def deliver_due(self, now: datetime | None = None) -> DeliveryReport:
        """Deliver the messages due now, all endpoints at once (``now``: a fixed time, for
        tests); a lane keeps claiming while its endpoint has messages due."""
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(self._rounds(now, None, rounds=1))

    def run_once(
        self, now: datetime | None = None, budget_seconds: float | None = None
    ) -> DeliveryReport:
        """Fan out, then deliver until nothing is due now or ``budget_seconds`` have passed
        (requests in flight then finish, up to their timeout)."""
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        report = DeliveryReport(messages=self.fan_out_pending())
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            report.add(runner.run(self._rounds(now, deadline)))
        return report

    async def _rounds(
        self, now: datetime | None, deadline: float | None, rounds: int | None = None
    ) -> DeliveryReport:
        total = DeliveryReport()
        async with sender.make_client(
            timeout=self.timeout, connections_per_host=self.per_endpoint
        ) as client:
            slots = asyncio.Semaphore(self.max_in_flight)
            done = 0
            while rounds is None or done < rounds:
                run = _Pass(client, slots, DeliveryReport(), now=now, deadline=deadline)
                due = await self._adb(webhooks.due_endpoints, run.clock())
                if not due:
                    break
                lanes = [self._lane(run, _Lane(endpoint_id)) for endpoint_id, _ in due]
                for failure in await asyncio.gather(*lanes, return_exceptions=True):
                    if isinstance(failure, Exception):
                        log.error("webhooks: a lane failed", exc_info=failure)
                total.add(run.report)
                done += 1
                if not run.claiming() or run.report.attempts == 0:
                    break
        return total

    # -- continuous delivery (the web process) ---------------------------------------------------

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Deliver continuously in a daemon thread; set the event to stop it."""
        stop = _Stop(self.wake)
        thread = threading.Thread(target=self.run, args=(stop,), name="webhooks", daemon=True)
        thread.start()
        return thread, stop

    def run(self, stop: threading.Event) -> None:
        """Fan out and deliver until ``stop`` is set, sleeping until the next message is due,
        new events arrive or ``wake`` is called."""
        backoff = FIRST_BACKOFF
        while not stop.is_set():
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(self._serve(stop))
            except Exception:
                log.exception("webhooks: the delivery worker failed; starting it again")
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def wake(self) -> None:
        """New events are in the store (Event Grid said so): look now rather than soon."""
        loop, kick = self._loop, self._kick
        if loop is not None and kick is not None:
            with contextlib.suppress(RuntimeError):  # the worker's loop has just closed
                loop.call_soon_threadsafe(kick.set)

    async def _serve(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick = kick = asyncio.Event()
        lanes: dict[str, tuple[_Lane, asyncio.Task[None]]] = {}

        def lane_ended(endpoint_id: str, task: asyncio.Task[None]) -> None:
            if lanes.get(endpoint_id, (None, None))[1] is task:
                del lanes[endpoint_id]
            kick.set()  # what it left may be due again, or another lane may now have room

        backoff = FIRST_BACKOFF
        async with sender.make_client(
            timeout=self.timeout, connections_per_host=self.per_endpoint
        ) as client:
            run = _Pass(client, asyncio.Semaphore(self.max_in_flight), DeliveryReport())
            try:
                while not stop.is_set():
                    kick.clear()
                    try:
                        await self._adb(self._fan_out)
                        now = run.clock()
                        next_due = await self._adb(webhooks.next_due)
                        due = await self._adb(webhooks.due_endpoints, now)
                    except Exception:
                        log.exception("webhooks: a delivery pass failed; trying again")
                        await self._idle(stop, backoff)
                        backoff = min(backoff * 2, MAX_BACKOFF)
                        continue
                    backoff = FIRST_BACKOFF
                    for endpoint_id, _ in due:
                        if endpoint_id in lanes:
                            lanes[endpoint_id][0].kick.set()
                            continue
                        lane = _Lane(endpoint_id)
                        task = asyncio.create_task(self._lane(run, lane))
                        lanes[endpoint_id] = (lane, task)
                        task.add_done_callback(functools.partial(lane_ended, endpoint_id))
                    # What is due now has a lane; wake for what falls due later.
                    wait = IDLE_TIMEOUT
                    if next_due is not None and next_due > now:
                        wait = min(wait, (next_due - now).total_seconds())
                    await self._idle(stop, wait)
            finally:
                self._loop = self._kick = self._feed_wait = None
                run.stopping = True
                tasks = [task for _, task in lanes.values()]
                if tasks:
                    _, late = await asyncio.wait(tasks, timeout=self.stop_grace)
                    for task in late:
                        task.cancel()
                    await asyncio.gather(*late, return_exceptions=True)

    async def _idle(self, stop: threading.Event, seconds: float) -> None:
        """Sleep up to ``seconds``: new events, a kick (``wake``, a lane ending) or ``stop``
        end it sooner (``stop`` within IDLE_TIMEOUT)."""
        kick = self._kick
        if seconds <= 0 or stop.is_set() or kick is None or kick.is_set():
            return
        # One wait on the feed at a time: a kick ends the sleep, not the wait, which the next
        # sleep takes over (it returns within IDLE_TIMEOUT anyway).
        feed = self._feed_wait
        if feed is None or feed.done():
            feed = self._feed_wait = asyncio.get_running_loop().run_in_executor(
                self._executor("feed"), self.store.wait_for, self._position, IDLE_TIMEOUT
            )
        kicked = asyncio.ensure_future(kick.wait())
        try:
            done, _ = await asyncio.wait(
                {feed, kicked}, timeout=seconds, return_when="FIRST_COMPLETED"
            )
            if feed in done and feed.exception() is not None:
                log.warning("webhooks: waiting for new events failed: %s", feed.exception())
                await asyncio.wait({kicked}, timeout=seconds)
        finally:
            kicked.cancel()

    # -- a lane: one endpoint's deliveries -------------------------------------------------------

    async def _lane(self, run: _Pass, lane: _Lane) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                room = self.per_endpoint - len(in_flight)
                can_claim = room > 0 and run.claiming() and not lane.closed
                if can_claim:
                    lane.kick.clear()
                    if await self._claim_and_send(run, lane, room, in_flight):
                        continue
                if not in_flight:
                    return
                waiting: set[asyncio.Future[Any]] = set(in_flight)
                kicked = asyncio.ensure_future(lane.kick.wait())
                if can_claim:  # with room, a kick (more is due) is worth another claim
                    waiting.add(kicked)
                try:
                    done, _ = await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
                finally:
                    kicked.cancel()
                in_flight.difference_update(done)
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            if lane.claimed:
                unsent, lane.claimed = [m.id for m in lane.claimed], collections.deque()
                with contextlib.suppress(Exception):  # else their lease ends: due again then
                    await self._adb(webhooks.release, unsent)

    async def _claim_and_send(
        self, run: _Pass, lane: _Lane, room: int, in_flight: set[asyncio.Task[None]]
    ) -> bool:
        """Claim up to ``room`` due messages (as many as there are free global slots, at least
        one) and start sending them; whether any were claimed."""
        await run.slots.acquire()
        if not run.claiming():  # stopped, or out of time, while waiting for a slot
            run.slots.release()
            lane.closed = True
            return False
        taken = 1
        while taken < room and not run.slots.locked():
            await run.slots.acquire()  # does not block: a free slot
            taken += 1
        messages: list[webhooks.Message] = []
        try:
            if not lane.claimed or self._stale(lane):
                refresh = self._stale(lane)
                endpoint, claimed = await self._adb(
                    self._claim,
                    lane.endpoint_id,
                    run.clock(),
                    0 if lane.claimed else max(taken, self.per_endpoint * PREFETCH),
                    refresh,
                )
                if refresh:
                    lane.endpoint, lane.endpoint_read = endpoint, time.monotonic()
                lane.claimed.extend(claimed)
            while lane.claimed and len(messages) < taken:
                messages.append(lane.claimed.popleft())
        except Exception:
            log.exception("webhooks: claiming messages of endpoint %s failed", lane.endpoint_id)
            lane.closed = True
            await asyncio.sleep(LANE_BACKOFF)
            return False
        finally:
            for _ in range(taken - len(messages)):
                run.slots.release()
        endpoint = lane.endpoint
        if endpoint is None or not endpoint.enabled:
            lane.closed = True
            return False
        for message in messages:
            in_flight.add(asyncio.create_task(self._deliver(run, lane, endpoint, message)))
        return bool(messages)

    @staticmethod
    def _stale(lane: _Lane) -> bool:
        return lane.endpoint is None or time.monotonic() - lane.endpoint_read > ENDPOINT_TTL

    def _claim(
        self, db: Database, endpoint_id: str, now: datetime, limit: int, refresh: bool
    ) -> tuple[webhooks.Endpoint | None, list[webhooks.Message]]:
        # The endpoint is read again every ENDPOINT_TTL: its URL or secrets may have changed.
        endpoint = webhooks.get_endpoint(db, endpoint_id) if refresh else None
        if refresh and endpoint is None:
            return None, []
        if endpoint is not None and not endpoint.enabled:
            webhooks.fail_pending(db, endpoint_id, now)
            return endpoint, []
        if limit <= 0:
            return endpoint, []
        return endpoint, webhooks.claim(db, endpoint_id, now, limit, self.lease)

    # -- one delivery ----------------------------------------------------------------------------

    async def _deliver(
        self, run: _Pass, lane: _Lane, endpoint: webhooks.Endpoint, message: webhooks.Message
    ) -> None:
        try:
            outcome = await self._send(run, endpoint, message)
            if outcome.ok:
                await self._record_ok(run, message, outcome)
                status, disabled = webhooks.DELIVERED, None
            else:
                status, disabled = await self._adb(
                    self._record, endpoint, message, outcome, run.clock()
                )
        except Exception:
            log.exception("webhooks: delivering message %s failed", message.id)
            run.report.errors += 1
            return
        finally:
            run.slots.release()
        if outcome.ok:
            run.report.delivered += 1
        elif status == webhooks.PENDING:
            run.report.retrying += 1
        else:
            run.report.failed += 1
        if disabled:
            lane.closed = True
            if endpoint.id not in run.report.disabled:
                run.report.disabled.append(endpoint.id)

    async def _send(
        self, run: _Pass, endpoint: webhooks.Endpoint, message: webhooks.Message
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        check = functools.partial(
            check_url,
            endpoint.url,
            allow_loopback_http=self.allow_loopback_http,
            resolve=self.resolve,
        )
        try:
            target = await loop.run_in_executor(None, check)  # DNS blocks: off the loop
        except UnsafeURL as exc:
            return Outcome(
                status=None,
                ok=False,
                latency_ms=0.0,
                response_excerpt="",
                error=f"{exc.code}: {exc}",
                retry_after=None,
                gone=False,
            )
        body = message.body.encode()
        # The receiver checks the timestamp against its own clock: always the real time.
        headers = signing.headers(
            endpoint.secrets(run.clock()), message.event_id, int(time.time()), body
        )
        return await sender.send(
            target, headers, body, timeout=self.timeout, client=run.client, pool=message.endpoint_id
        )

    async def _record_ok(self, run: _Pass, message: webhooks.Message, outcome: Outcome) -> None:
        """Log a success, with the others that arrive meanwhile: while the database thread
        writes one batch, the next gathers, so one transaction serves many deliveries."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run.delivered.append((message, outcome, run.clock(), done))
        if not run.logging_delivered:
            run.logging_delivered = True
            run.log_task = asyncio.create_task(self._log_delivered(run))
        await done

    async def _log_delivered(self, run: _Pass) -> None:
        try:
            while run.delivered:
                batch, run.delivered = run.delivered, []
                rows = [(m, o.status or 200, o.latency_ms, o.response_excerpt, at)
                        for m, o, at, _ in batch]  # fmt: skip
                try:
                    await self._adb(webhooks.record_delivered, rows)
                except Exception as exc:
                    for *_, done in batch:
                        done.set_exception(exc)
                    continue
                for *_, done in batch:
                    done.set_result(None)
        finally:
            run.logging_delivered = False

    def _record(
        self,
        db: Database,
        endpoint: webhooks.Endpoint,
        message: webhooks.Message,
        outcome: Outcome,
        now: datetime,
    ) -> tuple[str, str | None]:
        """Log a failed attempt and schedule the next (successes go through ``_record_ok``);
        disable the endpoint when it asks (410) or has failed too long. The message's new status
        and the reason it was disabled."""
        next_at = None
        if not outcome.gone:
            delay = schedule.delay_before(message.attempts + 2, self.retry_scale)
            if delay is not None and outcome.status in (429, 503):
                wish = schedule.retry_after(outcome.retry_after, now)
                delay = max(delay, wish or 0.0)
            if delay is not None:
                next_at = now + timedelta(seconds=delay)
        status = webhooks.record_attempt(
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
            current = webhooks.get_endpoint(db, endpoint.id)
            since = current.failing_since if current is not None and current.enabled else None
            if since is not None and now - since >= schedule.FAILING_TOO_LONG * self.retry_scale:
                last = outcome.error or f"HTTP {outcome.status}"
                reason = (
                    f"failing since {_shown(since)} for {schedule.FAILING_TOO_LONG.days} days; "
                    f"last error: {last}"
                )
        if reason is not None:
            webhooks.disable(db, endpoint.id, reason, now=now)
            log.warning("webhooks: endpoint %s disabled: %s", endpoint.id, reason)
        return status, reason


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
