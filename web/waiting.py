"""Long polls that cost no thread and no database connection while they wait.

``GET /api/v1/events/?wait=N`` is answered in parts. The request itself runs as an ordinary one
(``wait`` taken out) on the web's fixed thread pool, with that pool's connections. When it found
nothing and may wait, the ASGI layer (``web.edge``) parks it here: a future on the event loop.
``FeedWatch``, one thread per process, follows the feed (woken by the store: LISTEN/NOTIFY on
PostgreSQL, polling on SQLite), learns whose execution each new event belongs to, and wakes only
the waiters that would see it: its owner's, and staff's. Woken, the request runs once more on
the pool; at its deadline too. However many clients wait, the database sees the pool's
connections and the watcher's, and an event costs its owner's waiters a run each, nobody else's.

A user may hold ``LONG_POLLS_PER_USER`` waiting requests in this process; one more answers 429
with ``Retry-After`` at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

EVERYONE = "*"  # a waiter who sees every execution's events (staff)
RECENT = 20_000  # events remembered, to wake a waiter whose position the watcher has passed


@dataclass(frozen=True, slots=True)
class _Waiter:
    owner: str
    after: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]

    def sees(self, position: int, owner: str | None) -> bool:
        return position > self.after and (self.owner == EVERYONE or owner == self.owner)


class FeedWatch:
    """One thread that follows the feed and wakes the waiters each new event is for.

    ``head()`` is the feed's readable head; ``read(after)`` the next events after a position as
    ``(position, owner)`` pairs (owner None: no execution's); ``wait_for(after, timeout)`` blocks
    until the feed passes ``after`` or the timeout ends.
    """

    def __init__(
        self,
        head: Callable[[], int],
        read: Callable[[int], Sequence[tuple[int, str | None]]],
        wait_for: Callable[[int, float], bool],
        *,
        tick: float = 1.0,
    ) -> None:
        self._head = head
        self._read = read
        self._wait_for = wait_for
        self._tick = tick
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._owners: Counter[str] = Counter()
        self._recent: deque[tuple[int, str | None]] = deque(maxlen=RECENT)
        self._position: int | None = None  # where the watcher has read up to
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- the caps --------------------------------------------------------------------------------

    def admit(self, owner: str, limit: int) -> bool:
        """Count one more waiting request of ``owner``, unless they already hold ``limit``."""
        with self._lock:
            if self._owners[owner] >= limit:
                return False
            self._owners[owner] += 1
            return True

    def release(self, owner: str) -> None:
        with self._lock:
            self._owners[owner] -= 1
            if self._owners[owner] <= 0:
                del self._owners[owner]

    # -- waiting ---------------------------------------------------------------------------------

    async def wait(self, owner: str, after: int, timeout: float) -> bool:
        """Until an event after ``after`` that ``owner`` sees is in the feed (True), or
        ``timeout`` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(owner, after, loop, loop.create_future())
        self._ensure_running()
        with self._lock:
            if self._passed(waiter):
                return True
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _passed(self, waiter: _Waiter) -> bool:
        """Has the watcher already read past an event this waiter sees? (Under the lock.)"""
        if self._position is None or self._position <= waiter.after:
            return False
        if not self._recent or self._recent[0][0] > waiter.after + 1:
            return True  # older than what is remembered: let the request look for itself
        return any(waiter.sees(position, owner) for position, owner in reversed(self._recent))

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(target=self._follow, name="feed-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _follow(self) -> None:
        position: int | None = None
        while not self._stopped.is_set():
            try:
                if position is None:
                    position = self._head()
                    with self._lock:
                        self._position = position
                head = self._head()
                events = self._read(position)
                if events:
                    position = events[-1][0]
                    self._wake(events, position)
                elif head > position:  # only other streams' events: nobody's to wake
                    position = head
                    with self._lock:
                        self._position = position
                else:
                    self._wait_for(position, self._tick)
            except Exception:  # the database away: waiters time out, and their requests look
                log.warning("feed watch: reading the feed failed", exc_info=True)
                self._stopped.wait(self._tick)

    def _wake(self, events: Sequence[tuple[int, str | None]], position: int) -> None:
        with self._lock:
            self._recent.extend(events)
            self._position = position
            newest: dict[str | None, int] = {}
            for at, owner in events:
                newest[owner] = max(at, newest.get(owner, at))
            due = [
                w
                for w in self._waiters
                if (position if w.owner == EVERYONE else newest.get(w.owner, -1)) > w.after
            ]
            for waiter in due:
                self._waiters.remove(waiter)
        for waiter in due:
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
