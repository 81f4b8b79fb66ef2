"""The local Functions host: runs ``function_app.py`` on one machine with Event Grid's semantics.

A feed follower hands each event to every Event Grid-triggered function whose filters match, on
a bounded worker pool; the checkpoint only passes an event once all its deliveries finished
(at least once: functions act on the execution's stream, so a repeat finds nothing to do). A
delivery that raises is retried with backoff and dead-lettered after its last attempt. Timer
functions fire on their schedules, never overlapping themselves.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import azure.functions as func
import orjson
from azure.functions.timer import TimerRequest

from events import checkpoints
from events.database import Database
from events.envelope import RecordedEvent
from events.following import Backoff, FeedFollower
from events.store import EventStore
from handlers.bindings import EventSubscription, TimerFunction, event_grid_event, read_bindings
from handlers.deadletters import DeadLetterStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed delivery is tried again. Event Grid's default: 30 attempts, backing off
    from 10 s to at most 10 minutes."""

    max_attempts: int = 30
    backoff: Backoff = field(default_factory=lambda: Backoff(first=10.0, factor=2.0, cap=600.0))


@dataclass
class HostStats:
    delivered: int = 0  # successful invocations
    failed_attempts: int = 0  # invocations that raised
    dead_lettered: int = 0
    timer_runs: int = 0


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    event: RecordedEvent = field(compare=False)
    subscription: EventSubscription = field(compare=False)
    attempt: int = field(default=1, compare=False)
    counted: bool = field(default=True, compare=False)  # part of checkpoint bookkeeping
    # Holds one of the feed's in-flight slots. A delivery waiting for a retry gives its slot
    # back, so a function that fails for hours does not stall every other function's events.
    holds_slot: bool = field(default=True, compare=False)


class LocalFunctionsHost:
    def __init__(
        self,
        app: func.FunctionApp,
        store: EventStore,
        deadletters: DeadLetterStore,
        *,
        settings: Mapping[str, str] | None = None,
        topic: str = "/magictoolbox/local",
        workers: int = 4,
        max_in_flight: int = 256,
        retry: RetryPolicy | None = None,
        batch_size: int = 500,
        checkpoint_name: str = "functions",
        checkpoint_interval: float = 0.2,
        linger: float = 0.003,
        timers: bool = True,
        skip_timers: Collection[str] = (),
        feed: bool = True,
        start_position: int | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.deadletters = deadletters
        self.topic = topic
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.checkpoint_name = checkpoint_name
        self.checkpoint_interval = checkpoint_interval
        self.linger = linger
        self.subscriptions, timer_functions = read_bindings(app, settings or {})
        # ``skip_timers``: timers whose work this process does another way (the web's relay).
        self.timers = [t for t in timer_functions if t.name not in skip_timers]
        self.run_timers = timers
        # Without the feed, events come from Event Grid through the HTTP trigger
        # (handlers.eventgrid_trigger) and this host only runs the timers.
        self.follow_feed = feed
        self.stats = HostStats()
        self._start_position = start_position
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="functions")
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._pending: dict[int, int] = {}  # feed position → deliveries not yet finished
        self._read_up_to = 0  # the feed position read and dispatched
        self._saved = -1
        self._saved_at = 0.0
        self._retries: list[_Delivery] = []
        self._seq = itertools.count()
        self._timer_busy: set[str] = set()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalFunctionsHost:
        self.deadletters.setup()
        position = self._start_position
        if position is None:
            with Database(self.deadletters.database_url) as db:
                position = checkpoints.position(db, self.checkpoint_name)
        self._read_up_to = position
        targets = []
        if self.follow_feed:
            targets += [("feed", self._follow_feed), ("retries", self._run_retries)]
        if self.run_timers and self.timers:
            targets.append(("timers", self._run_timers))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"functions-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info(
            "functions host: %d event subscriptions, %d timers, from position %d",
            len(self.subscriptions),
            len(self.timers),
            position,
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)
        if self.follow_feed:
            with Database(self.deadletters.database_url) as db:
                self._save_checkpoint(db, force=True)

    def __enter__(self) -> LocalFunctionsHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def checkpoint(self) -> int:
        """Every delivery of every event up to here has finished."""
        with self._lock:
            return (min(self._pending) - 1) if self._pending else self._read_up_to

    def wait_until_idle(self, timeout: float = 30.0) -> bool:
        """True once the feed is read to its head and no delivery or retry is outstanding."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head = self.store.head_position()
            with self._lock:
                if not self._pending and not self._retries and self._read_up_to >= head:
                    return True
                self._lock.wait(0.02)
        return False

    # -- delivery --------------------------------------------------------------------------------

    def dispatch(self, event: RecordedEvent) -> int:
        """Deliver one event now, outside the feed (a duplicate delivery, a redrive, a test)."""
        count = 0
        for subscription in self.subscriptions:
            if subscription.matches(event.type, event.subject):
                self._submit(
                    _Delivery(
                        0, next(self._seq), event, subscription, counted=False, holds_slot=False
                    )
                )
                count += 1
        return count

    def _follow_feed(self) -> None:
        # One connection for this thread's checkpoint writes: connecting costs more than a write.
        with Database(self.deadletters.database_url) as db:
            follower = FeedFollower(
                self.store,
                self._dispatch_batch,
                start=lambda: self._read_up_to,
                name="functions host",
                batch_size=self.batch_size,
                after_pass=lambda: self._save_checkpoint(db),
                idle_timeout=min(self.checkpoint_interval, 1.0),
                linger=self.linger,
            )
            follower.run(self._stop)

    def _dispatch_batch(self, events: Sequence[RecordedEvent], after: int) -> int:
        """Hand each event to its functions; the last position dispatched (short of the batch's
        end only when the host stops while waiting for a free slot)."""
        for event in events:
            matching = [s for s in self.subscriptions if s.matches(event.type, event.subject)]
            if matching:
                with self._lock:
                    self._pending[event.position] = len(matching)
            for subscription in matching:
                while not self._slots.acquire(timeout=0.5):
                    if self._stop.is_set():
                        return self._read_up_to
                self._submit(_Delivery(0, next(self._seq), event, subscription))
            with self._lock:
                self._read_up_to = event.position
        return self._read_up_to

    def _submit(self, delivery: _Delivery) -> None:
        # A shut-down pool refuses work: the checkpoint keeps the event for the next run.
        with contextlib.suppress(RuntimeError):
            self._pool.submit(self._deliver, delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        subscription = delivery.subscription
        try:
            subscription.function(
                **{subscription.arg_name: event_grid_event(delivery.event, self.topic)}
            )
        except Exception as exc:
            self._failed(delivery, exc)
            return
        with self._lock:
            self.stats.delivered += 1
        self._finished(delivery)

    def _failed(self, delivery: _Delivery, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.stats.failed_attempts += 1
        if self._stop.is_set():
            self._finished(delivery, stopping=True)
            return
        if delivery.attempt >= self.retry.max_attempts:
            if self._dead_letter(delivery, error):
                self._finished(delivery)
                return
            # Not even the dead letter could be written: keep the event (the checkpoint stays
            # before it) and try the whole delivery again later.
            delivery = replace(delivery, attempt=delivery.attempt - 1)
        delay = self.retry.backoff.delay(delivery.attempt)
        log.warning(
            "%s failed on %s (attempt %d): %s; retrying in %.3gs",
            delivery.subscription.name,
            delivery.event.id,
            delivery.attempt,
            error,
            delay,
        )
        retry = _Delivery(
            time.monotonic() + delay,
            next(self._seq),
            delivery.event,
            delivery.subscription,
            delivery.attempt + 1,
            delivery.counted,
            holds_slot=False,
        )
        if delivery.holds_slot:
            self._slots.release()
        with self._lock:
            heapq.heappush(self._retries, retry)
            self._lock.notify_all()

    def _dead_letter(self, delivery: _Delivery, error: str) -> bool:
        event = delivery.event
        try:
            self.deadletters.add(
                function=delivery.subscription.name,
                event_id=str(event.id),
                position=event.position,
                event_type=event.type,
                subject=event.subject,
                event_json=orjson.dumps(event.to_cloudevent()).decode(),
                attempts=delivery.attempt,
                last_error=error,
            )
        except Exception:
            log.exception("could not record the dead letter of %s", event.id)
            return False
        with self._lock:
            self.stats.dead_lettered += 1
        log.error(
            "%s: event %s dead-lettered after %d attempts: %s",
            delivery.subscription.name,
            event.id,
            delivery.attempt,
            error,
        )
        return True

    def _finished(self, delivery: _Delivery, stopping: bool = False) -> None:
        if delivery.holds_slot:
            self._slots.release()
        if not delivery.counted:
            return
        if stopping:
            return  # unfinished: the checkpoint stays before it and a restart delivers again
        with self._lock:
            position = delivery.event.position
            left = self._pending.get(position, 0) - 1
            if left > 0:
                self._pending[position] = left
            else:
                self._pending.pop(position, None)
            self._lock.notify_all()

    def _run_retries(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                due = []
                while self._retries and self._retries[0].due <= now:
                    due.append(heapq.heappop(self._retries))
                wait = (self._retries[0].due - now) if self._retries else 0.5
                if not due:
                    self._lock.wait(min(wait, 0.5))
            for delivery in due:
                self._submit(delivery)

    def _save_checkpoint(self, db: Database, force: bool = False) -> None:
        position = self.checkpoint
        if position == self._saved:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < self.checkpoint_interval:
            return
        try:
            checkpoints.write(db, self.checkpoint_name, position)
        except Exception:
            log.exception("functions host: saving the checkpoint failed")
            return
        self._saved, self._saved_at = position, now

    # -- timers ----------------------------------------------------------------------------------

    def _run_timers(self) -> None:
        now = datetime.now(UTC)
        due = {t.name: t.next_after(now) for t in self.timers}
        for timer in self.timers:
            if timer.run_on_startup:
                self._fire(timer, past_due=False)
        while not self._stop.is_set():
            now = datetime.now(UTC)
            for timer in self.timers:
                if due[timer.name] <= now:
                    # Past due when the host was so busy that the moment went by a second ago.
                    late = (now - due[timer.name]).total_seconds() > 1.0
                    self._fire(timer, past_due=late)
                    due[timer.name] = timer.next_after(now)
            wait = min(due.values()) - datetime.now(UTC)
            self._stop.wait(max(0.0, min(wait.total_seconds(), 1.0)))

    def _fire(self, timer: TimerFunction, past_due: bool) -> None:
        with self._lock:
            if timer.name in self._timer_busy:  # a timer never overlaps itself (Azure's singleton)
                return
            self._timer_busy.add(timer.name)

        def invoke() -> None:
            try:
                timer.function(**{timer.arg_name: TimerRequest(past_due=past_due)})
            except Exception:
                log.exception("timer function %s failed", timer.name)
            finally:
                with self._lock:
                    self._timer_busy.discard(timer.name)
                    self.stats.timer_runs += 1

        try:
            self._pool.submit(invoke)
        except RuntimeError:
            with self._lock:
                self._timer_busy.discard(timer.name)
