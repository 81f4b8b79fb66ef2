"""The projector: keeps every projection caught up with the event feed.

Each projection is a ``FeedFollower`` whose batch and checkpoint are one transaction, so a crash
leaves rows and checkpoint in step. A projection that fails is rolled back, its error recorded on
its checkpoint row, and retried after a growing pause while the others carry on. ``run`` gives
each projection its own thread and connection (the status model never waits behind the slower
ones); ``run_once`` makes one pass of all (tests, commands, a nudge from Event Grid).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from events import checkpoints
from events.database import Database
from events.envelope import RecordedEvent
from events.following import Backoff, FeedFollower
from events.store import EventStore
from projections.projection import LIVE, Projection, create_tables
from projections.registry import ALL

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 1.0  # wait_for returns at least this often, so stop is honoured promptly
FIRST_BACKOFF = 0.5
LINGER = 0.005  # under a burst, how long a caught-up projection lets events gather
MAX_BACKOFF = 60.0

# Called after a batch commits (projection name, the batch, the pass's connection): the web
# process pushes live updates from here. Its failure never fails the pass.
OnApplied = Callable[[str, Sequence[RecordedEvent], Database], None]


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    checkpoint: int
    head: int
    lag: int  # head - checkpoint, in feed positions
    last_error: str | None
    failed_at: datetime | None


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
        on_applied: OnApplied | None = None,
        linger: float = LINGER,
    ) -> None:
        self.store = store
        self.db = Database(db_url)
        self.projections = list(ALL.values()) if projections is None else list(projections)
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout
        self.first_backoff = first_backoff
        self.on_applied = on_applied
        self.linger = linger
        self._lock = threading.Lock()  # one Database connection, used by one thread at a time
        self._once: dict[str, FeedFollower] = {}  # run_once's followers, on self.db
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

    def follower(self, projection: Projection, db: Database) -> FeedFollower:
        """A follower applying ``projection`` through the connection ``db``."""
        name = projection.name

        def apply(events: Sequence[RecordedEvent], after: int) -> int | None:
            with db.transaction():
                if checkpoints.locked_position(db, name) != after:
                    return None  # another projector (or a rebuild) moved it: read it again
                projection.apply(db, events, LIVE)
                self._write_checkpoint(name, events[-1].position, events, db)
            if self.on_applied is not None:
                try:
                    self.on_applied(name, events, db)
                except Exception:
                    log.exception("projection %s: on_applied failed", name)
            return events[-1].position

        def record_error(error: str) -> None:
            with db.transaction():
                checkpoints.record_error(db, name, error)

        return FeedFollower(
            self.store,
            apply,
            start=lambda: checkpoints.position(db, name),
            name=f"projection {name}",
            batch_size=self.batch_size,
            types=projection.types,
            backoff=Backoff(first=self.first_backoff, cap=MAX_BACKOFF),
            on_error=record_error,
            idle_timeout=self.idle_timeout,
            linger=self.linger,
        )

    def _write_checkpoint(
        self, name: str, position: int, events: Sequence[RecordedEvent], db: Database
    ) -> None:
        """Move the checkpoint in the batch's transaction (the seam fault-injection tests use)."""
        checkpoints.write(db, name, position)

    def run_once(self) -> int:
        """One batch for each projection that is due; the number of events read."""
        read = 0
        with self._lock:
            for projection in self.projections:
                follower = self._once.get(projection.name)
                if follower is None:
                    follower = self._once[projection.name] = self.follower(projection, self.db)
                # Another projector (a thread of ``run``, a rebuild) may have moved it.
                follower.position = None
                read += follower.attempt()
        return read

    def run(self, stop: threading.Event) -> None:
        """Apply until ``stop`` is set: each projection in its own thread, with its own
        connection, so their database round trips and commits overlap instead of queueing."""
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
        with Database(self.db.url) as db:
            self.follower(projection, db).run(stop)

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
