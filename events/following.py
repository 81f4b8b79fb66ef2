"""Following the feed: one reader of the store's global feed, from its checkpoint onward.

The projector, the Functions host, the outbox relay and the webhook fan-out are each a
``FeedFollower`` with their own ``process``: read a batch after the position, hand it over, go
on from the position ``process`` reached; sleep in ``store.wait_for`` when caught up; after a
failure, record it and back off (``Backoff``); stop when told. Where the position is kept, and
whether ``process`` writes it in its own transaction, is the caller's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from events.envelope import RecordedEvent
from events.store import EventStore

log = logging.getLogger(__name__)

# process(events, after) -> the position it got to (it may stop early, e.g. when told to stop),
# or None: another reader moved the checkpoint, so read it again and carry on from there.
Process = Callable[[Sequence[RecordedEvent], int], int | None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds to wait after the ``n``-th failure in a row: ``first``, times ``factor`` each
    time, at most ``cap``."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.first * self.factor ** max(failures - 1, 0), self.cap)


def describe(exc: BaseException) -> str:
    """An error as one line for a status table: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class FeedFollower:
    def __init__(
        self,
        store: EventStore,
        process: Process,
        *,
        start: Callable[[], int],
        name: str = "follower",
        batch_size: int = 1000,
        types: Sequence[str] | None = None,
        backoff: Backoff | None = None,
        on_error: Callable[[str], None] | None = None,
        after_pass: Callable[[], None] | None = None,
        idle_timeout: float = 1.0,
        linger: float = 0.005,
    ) -> None:
        """``start`` says where to begin (the stored checkpoint); it is asked again whenever
        ``process`` reports that another reader moved it. ``on_error`` records a failure where
        others can see it; ``after_pass`` runs after every pass, events or not."""
        self.store = store
        self.process = process
        self.start_position = start
        self.name = name
        self.batch_size = batch_size
        self.types = types
        self.backoff = backoff or Backoff()
        self.on_error = on_error
        self.after_pass = after_pass
        self.idle_timeout = idle_timeout
        self.linger = linger
        self.position: int | None = None  # None: ask ``start`` before the next read
        self.failures = 0  # in a row; 0 once a pass succeeds
        self.retry_at = 0.0  # time.monotonic() before which no pass is tried after a failure

    # -- one pass --------------------------------------------------------------------------------

    def step(self) -> int:
        """Read one batch after the position and process it; how many events were read.

        A failure propagates (see ``attempt`` for the recording, backing-off kind of pass).
        """
        if self.position is None:
            self.position = self.start_position()
        after = self.position
        events = self.store.read_all(after, limit=self.batch_size, types=self.types)
        if events:
            reached = self.process(events, after)
            self.position = reached  # None: read the moved checkpoint next time
        self._succeeded()
        if self.after_pass is not None:
            self.after_pass()
        return len(events)

    def attempt(self) -> int:
        """``step``, unless a failure's backoff has not passed; a failure is recorded and backed
        off rather than raised. How many events were read (0 after a failure)."""
        if self.failures and time.monotonic() < self.retry_at:
            return 0
        try:
            return self.step()
        except Exception as exc:
            self._failed(exc)
            return 0

    def drain(self) -> int:
        """``step`` until a pass reads less than a batch (caught up); failures propagate."""
        read = total = self.step()
        while read >= self.batch_size:
            read = self.step()
            total += read
        return total

    def catch_up(self, stop: threading.Event | None = None) -> int:
        """Read until caught up, backing off and trying again after each failure, until ``stop``
        is set. How many events were read."""
        stop = stop or threading.Event()
        total = 0
        while not stop.is_set():
            try:
                read = self.step()
            except Exception as exc:
                self._failed(exc)
                stop.wait(max(self.retry_at - time.monotonic(), 0.0))
                continue
            total += read
            if read < self.batch_size:
                break
        return total

    # -- following -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow until ``stop`` is set: at once while there is more, lingering a moment while a
        burst arrives (so one pass takes many events), asleep in ``wait_for`` when caught up."""
        while not stop.is_set():
            if self.failures and time.monotonic() < self.retry_at:
                stop.wait(min(self.retry_at - time.monotonic(), self.idle_timeout))
                continue
            read = self.attempt()
            if self.failures or stop.is_set():
                continue
            if read >= self.batch_size:
                continue
            if read > 1:
                stop.wait(self.linger)
            elif self.position is not None:
                self.store.wait_for(self.position, self.idle_timeout)

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Follow in a daemon thread; set the event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name=self.name, daemon=True)
        thread.start()
        return thread, stop

    # -- failures --------------------------------------------------------------------------------

    def _succeeded(self) -> None:
        if self.failures:
            log.info("%s recovered at position %s", self.name, self.position)
        self.failures = 0

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        error = describe(exc)
        delay = self.backoff.delay(self.failures)
        self.retry_at = time.monotonic() + delay
        # The whole traceback once per streak; after that one line a time.
        log.error(
            "%s failed (%d in a row, trying again in %.3gs): %s",
            self.name,
            self.failures,
            delay,
            error,
            exc_info=exc if self.failures == 1 else None,
        )
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                log.exception("%s: could not record the failure", self.name)
