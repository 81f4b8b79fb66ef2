"""The projector: keeps every projection caught up with the event feed.

Each pass reads one batch after each projection's checkpoint and applies it in one transaction
that also moves the checkpoint, so a crash at any point leaves rows and checkpoint in step: the
batch is applied again in full, or was applied once. A projection that raises is rolled back,
its error is recorded on its checkpoint row and logged, and it is retried after a growing pause;
the others carry on. ``run`` gives each projection its own thread and connection, so the status
model never waits behind the slower ones; a projection that is caught up sleeps in
``store.wait_for`` until new events arrive. ``run_once`` makes one pass of all (tests, CLI).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from events import checkpoints
from events.database import Database
from events.envelope import RecordedEvent
from events.store import EventStore
from projections.projection import LIVE, Projection, create_tables
from projections.registry import ALL

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 1.0  # wait_for returns at least this often, so stop is honoured promptly
FIRST_BACKOFF = 0.5
LINGER = 0.005  # under a burst, how long a caught-up projection lets events gather
MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    checkpoint: int
    head: int
    lag: int  # head - checkpoint, in feed positions
    last_error: str | None
    failed_at: datetime | None


@dataclass(slots=True)
class _Failing:
    failures: int
    retry_at: float


class Projector:
    def __init__(
        self,
        store: EventStore,
        db_url: str,
        projections: Sequence[Projection] | None = None,
        batch_size: int = 1000,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        first_backoff: float = FIRST_BACKOFF,
        on_applied: Callable[[str, Sequence[RecordedEvent], Database], None] | None = None,
        linger: float = LINGER,
    ) -> None:
        self.store = store
        self.db = Database(db_url)
        self.projections = list(ALL.values()) if projections is None else list(projections)
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout
        self.first_backoff = first_backoff
        # Called after a batch commits (projection name, the batch, the pass's connection):
        # the web process pushes live updates from here. Its failure never fails the pass.
        self.on_applied = on_applied
        self.linger = linger
        self._lock = threading.Lock()  # one Database connection, used by one thread at a time
        self._failing: dict[str, _Failing] = {}
        self._positions: dict[str, int] = {}
        self._nudged = threading.Event()
        self._nudger: threading.Thread | None = None
        self._nudger_lock = threading.Lock()  # not _lock: a nudge never waits for a pass

    def setup(self) -> None:
        """Create the checkpoint table and every projection's tables if they are missing."""
        with self._lock, self.db.transaction():
            checkpoints.create_table(self.db, [p.name for p in self.projections])
            for projection in self.projections:
                create_tables(self.db, projection, LIVE)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- applying ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """One batch for each projection that is due; the number of events applied."""
        applied = 0
        with self._lock:
            positions = {name: c.position for name, c in checkpoints.read_all(self.db).items()}
            for projection in self.projections:
                failing = self._failing.get(projection.name)
                if failing is not None and time.monotonic() < failing.retry_at:
                    continue
                position = positions.get(projection.name, 0)
                applied += self._pass(projection, position)
        return applied

    def _pass(self, projection: Projection, position: int, db: Database | None = None) -> int:
        name = projection.name
        db = db or self.db
        try:
            events = self.store.read_all(position, limit=self.batch_size, types=projection.types)
            if events:
                with db.transaction():
                    if checkpoints.locked_position(db, name) != position:
                        # Another projector (or a rebuild) moved it: re-read on the next pass.
                        return 0
                    projection.apply(db, events, LIVE)
                    self._write_checkpoint(name, events[-1].position, events, db)
                position = events[-1].position
        except Exception as exc:
            self._failed(name, exc, db)
            return 0
        if events and self.on_applied is not None:
            try:
                self.on_applied(name, events, db)
            except Exception:
                log.exception("projection %s: on_applied failed", name)
        self._positions[name] = position
        if self._failing.pop(name, None) is not None:
            log.info("projection %s recovered at position %d", name, position)
        return len(events)

    def _write_checkpoint(
        self, name: str, position: int, events: list[RecordedEvent], db: Database
    ) -> None:
        """Move the checkpoint in the batch's transaction (the seam fault-injection tests use)."""
        checkpoints.write(db, name, position)

    def _failed(self, name: str, exc: Exception, db: Database) -> None:
        failing = self._failing.get(name) or _Failing(0, 0.0)
        failing.failures += 1
        delay = min(self.first_backoff * 2 ** (failing.failures - 1), MAX_BACKOFF)
        failing.retry_at = time.monotonic() + delay
        self._failing[name] = failing
        log.error(
            "projection %s failed (attempt %d, retrying in %.1fs)",
            name,
            failing.failures,
            delay,
            exc_info=exc,
        )
        error = "".join(traceback.format_exception_only(exc)).strip()
        try:
            with db.transaction():
                checkpoints.record_error(db, name, error)
        except Exception:
            log.exception("could not record the failure of projection %s", name)

    def run(self, stop: threading.Event) -> None:
        """Apply until ``stop`` is set: each projection in its own thread, with its own connection.

        So the status model, which the UI polls, never waits behind the history or statistics
        passes: their database round trips and commits overlap instead of queueing.
        """
        while not stop.is_set():
            try:
                self.setup()
                break
            except Exception:
                log.exception("projector setup failed; trying again")
                stop.wait(self.first_backoff)
        workers = [
            threading.Thread(
                target=self._follow, args=(p, stop), name=f"projector-{p.name}", daemon=True
            )
            for p in self.projections
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _follow(self, projection: Projection, stop: threading.Event) -> None:
        """Keep one projection caught up; sleep in ``wait_for`` when it is."""
        name = projection.name
        with Database(self.db.url) as db:
            while not stop.is_set():
                failing = self._failing.get(name)
                if failing is not None and time.monotonic() < failing.retry_at:
                    stop.wait(min(failing.retry_at - time.monotonic(), self.idle_timeout))
                    continue
                try:
                    stored = checkpoints.read_all(db).get(name)
                    position = stored.position if stored else 0
                    applied = self._pass(projection, position, db)
                except Exception:
                    log.exception("projection %s: pass failed", name)  # e.g. the database is down
                    stop.wait(self.first_backoff)
                    continue
                if applied >= self.batch_size:
                    continue  # there is more to read right now
                if applied > 1:
                    # A burst is arriving: let it gather for a moment, so that one transaction
                    # applies many events rather than each its own (as the Functions host does).
                    stop.wait(self.linger)
                    continue
                if name not in self._failing:
                    self.store.wait_for(self._positions.get(name, position), self.idle_timeout)

    def nudge(self) -> None:
        """Catch up now, without waiting for the feed to say so (Event Grid pushed news).

        One pass in a background thread; nudges that arrive during it make one more pass, not
        one each. Safe beside ``run``: a checkpoint that moved makes the second writer stand down.
        """
        self._nudged.set()
        with self._nudger_lock:
            if self._nudger is None or not self._nudger.is_alive():
                self._nudger = threading.Thread(
                    target=self._on_nudges, name="projector-nudge", daemon=True
                )
                self._nudger.start()

    def _on_nudges(self) -> None:
        while self._nudged.wait(timeout=30.0):  # the thread ends after 30 s without a nudge
            self._nudged.clear()
            try:
                while self.run_once() >= self.batch_size:
                    pass
            except Exception:
                log.exception("projector: a nudged pass failed")

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread (the web process does this); set the event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="projector", daemon=True)
        thread.start()
        return thread, stop

    # -- reporting -----------------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        head = self.store.head_position()
        with self._lock:
            stored = checkpoints.read_all(self.db)
        result = []
        for projection in self.projections:
            c = stored.get(projection.name)
            position = c.position if c else 0
            result.append(
                ProjectionStatus(
                    name=projection.name,
                    checkpoint=position,
                    head=head,
                    lag=max(0, head - position),
                    last_error=c.last_error if c else None,
                    failed_at=c.failed_at if c else None,
                )
            )
        return result
