"""The user-webhook worker's loop: the feed becomes messages, due messages go out in lanes.

A feed follower fans new events out into messages (``messages.fan_out``, with its checkpoint);
then every endpoint with messages due gets a lane (``lanes``) on one asyncio loop. ``run`` keeps
at it in the web process, sleeping until the next message is due, new events arrive or ``wake``
is called; ``run_once`` delivers what is due and returns, and ``sweep`` deletes the messages past
retention (both the ``webhooks`` timer Function's). The database is used from one thread of the
dispatcher's own, so the loop never waits on a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import uvloop

from events import checkpoints
from events.database import Database
from events.envelope import RecordedEvent
from events.following import Backoff, FeedFollower
from events.store import EventStore
from services.webhooks import messages, sender, tables
from services.webhooks.delivery import Deliveries, DeliveryOptions, DeliveryReport, Round
from services.webhooks.lanes import Lane, Lanes

log = logging.getLogger(__name__)

T = TypeVar("T")

IDLE_TIMEOUT = 1.0  # the continuous worker looks at the feed and the queue at least this often
FAILURE_BACKOFF = Backoff(first=0.5, factor=2.0, cap=30.0)  # after a failed pass (database down)
RETENTION = timedelta(days=30)  # WEBHOOK_MESSAGE_RETENTION_DAYS' default


class _Stop(threading.Event):
    """A stop event that also wakes the worker, so that it stops at once, not within a second."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake()


class WebhookDispatcher:
    def __init__(
        self,
        store: EventStore,
        database_url: str,
        *,
        batch_size: int = 500,
        retention: timedelta = RETENTION,
        **options: Any,
    ) -> None:
        """``options`` are ``DeliveryOptions``' fields (``allow_loopback_http``, ``lease``, …);
        ``retention`` is how long messages are kept after their last attempt (``sweep``)."""
        self.store = store
        self.database_url = database_url
        self.retention = retention
        self.options = DeliveryOptions(**{k: v for k, v in options.items() if v is not None})
        self.lanes = Lanes(Deliveries(self.options, self._adb))
        self._db = Database(database_url)
        self._ready = False
        self._threads_lock = threading.Lock()
        self._db_thread: ThreadPoolExecutor | None = None
        self._feed_thread: ThreadPoolExecutor | None = None
        self._made = 0  # messages made by the fan-out pass under way
        self.fan_out = FeedFollower(
            store,
            self._fan_out_batch,
            start=lambda: checkpoints.position(self._db, tables.CHECKPOINT),
            name="webhook fan-out",
            batch_size=batch_size,
        )
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
            tables.setup(self._db)
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
        self._made = 0
        self.fan_out.position = None  # another worker (the timer, the web) may have moved it
        self.fan_out.drain()
        return self._made

    def _fan_out_batch(self, events: Sequence[RecordedEvent], after: int) -> int | None:
        """The follower's process, on the database thread; counts the messages it made."""
        made = messages.fan_out(self._db, events, after)
        if made is None:
            return None  # another worker moved the checkpoint: read from there
        self._made += made
        return events[-1].position

    # -- retention -------------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> int:
        """Delete the messages (and their attempts) past retention: how many messages."""
        before = (now or datetime.now(UTC)) - self.retention
        return self._on_db(messages.sweep, before)

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
        async with self._client() as client:
            slots = asyncio.Semaphore(self.options.max_in_flight)
            done = 0
            while rounds is None or done < rounds:
                run = Round(client, slots, DeliveryReport(), now=now, deadline=deadline)
                due = await self._adb(messages.due_endpoints, run.clock())
                if not due:
                    break
                lanes = [self.lanes.run(run, Lane(endpoint_id)) for endpoint_id, _ in due]
                for failure in await asyncio.gather(*lanes, return_exceptions=True):
                    if isinstance(failure, Exception):
                        log.error("webhooks: a lane failed", exc_info=failure)
                total.add(run.report)
                done += 1
                if not run.claiming() or run.report.attempts == 0:
                    break
        return total

    def _client(self) -> Any:
        return sender.make_client(
            timeout=self.options.timeout, connections_per_host=self.options.per_endpoint
        )

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
        failures = 0
        while not stop.is_set():
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(self._serve(stop))
            except Exception:
                failures += 1
                log.exception("webhooks: the delivery worker failed; starting it again")
                stop.wait(FAILURE_BACKOFF.delay(failures))

    def wake(self) -> None:
        """New events are in the store (Event Grid said so): look now rather than soon."""
        loop, kick = self._loop, self._kick
        if loop is not None and kick is not None:
            with contextlib.suppress(RuntimeError):  # the worker's loop has just closed
                loop.call_soon_threadsafe(kick.set)

    async def _serve(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick = kick = asyncio.Event()
        lanes: dict[str, tuple[Lane, asyncio.Task[None]]] = {}

        def lane_ended(endpoint_id: str, task: asyncio.Task[None]) -> None:
            if lanes.get(endpoint_id, (None, None))[1] is task:
                del lanes[endpoint_id]
            kick.set()  # what it left may be due again, or another lane may now have room

        failures = 0
        async with self._client() as client:
            run = Round(client, asyncio.Semaphore(self.options.max_in_flight), DeliveryReport())
            try:
                while not stop.is_set():
                    kick.clear()
                    try:
                        await self._adb(self._fan_out)
                        now = run.clock()
                        next_due = await self._adb(messages.next_due)
                        due = await self._adb(messages.due_endpoints, now)
                    except Exception:
                        failures += 1
                        log.exception("webhooks: a delivery pass failed; trying again")
                        await self._idle(stop, FAILURE_BACKOFF.delay(failures))
                        continue
                    failures = 0
                    for endpoint_id, _ in due:
                        if endpoint_id in lanes:
                            lanes[endpoint_id][0].kick.set()
                            continue
                        lane = Lane(endpoint_id)
                        task = asyncio.create_task(self.lanes.run(run, lane))
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
                    _, late = await asyncio.wait(tasks, timeout=self.options.stop_grace)
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
            position = self.fan_out.position or 0
            feed = self._feed_wait = asyncio.get_running_loop().run_in_executor(
                self._executor("feed"), self.store.wait_for, position, IDLE_TIMEOUT
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
