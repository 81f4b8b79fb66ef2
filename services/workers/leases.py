"""Leases: which processes that run tools are alive, as each says itself every few seconds.

A process with a worker pool renews its row (``lease_until`` = now + the lease) from a
heartbeat thread. A ``Processing`` event names the worker as ``<process id>/<worker pid>``;
the sweeper fails the attempts of a process whose lease ran out (or that has no row) with
``worker_lost``, and they are retried at once. The table sits beside the read models: it is
operational state, renewed in place, not history.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from events.database import Database

log = logging.getLogger(__name__)

TABLE = "worker_leases"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    process_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at {{ts}} NOT NULL,
    lease_until {{ts}} NOT NULL
)"""
DEFAULT_LEASE = 15.0


def process_of(worker_id: str) -> str:
    """``host:pid:tag/4711`` → ``host:pid:tag``: the process whose lease covers the worker."""
    return worker_id.split("/", 1)[0]


def setup(db: Database) -> None:
    db.execute(db.ddl(DDL))


def renew(db: Database, process_id: str, lease: float, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=lease)
    db.execute(
        f"INSERT INTO {TABLE} (process_id, host, pid, started_at, lease_until) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (process_id) DO UPDATE SET lease_until = ?",
        (process_id, socket.gethostname(), os.getpid(), now, until, until),
    )


def drop(db: Database, process_id: str) -> None:
    db.execute(f"DELETE FROM {TABLE} WHERE process_id = ?", (process_id,))


def alive(db: Database, process_ids: Iterable[str], now: datetime | None = None) -> set[str]:
    """Those of ``process_ids`` whose lease has not run out."""
    wanted = list(dict.fromkeys(process_ids))
    if not wanted:
        return set()
    now = now or datetime.now(UTC)
    rows = db.select_in(
        f"SELECT process_id, lease_until FROM {TABLE} WHERE {{in_}}", "process_id", wanted
    )
    return {row[0] for row in rows if row[1] >= now}


def forget_expired(db: Database, older_than: timedelta, now: datetime | None = None) -> int:
    """Remove rows of processes gone for longer than ``older_than``; how many went."""
    now = now or datetime.now(UTC)
    rows = db.execute(f"SELECT process_id, lease_until FROM {TABLE}")
    gone = [row[0] for row in rows if row[1] < now - older_than]
    for process_id in gone:
        drop(db, process_id)
    return len(gone)


class Heartbeat:
    """Keeps one process's lease: renewed every third of it, dropped on a clean stop."""

    def __init__(self, url: str, process_id: str, lease: float = DEFAULT_LEASE) -> None:
        self.url = url
        self.process_id = process_id
        self.lease = lease
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """Takes the lease now (before any run is recorded under it), then keeps it."""
        with Database(self.url) as db:
            setup(db)
            renew(db, self.process_id, self.lease)
        self.beats += 1
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        db = Database(self.url)
        try:
            while not self._stop.wait(self.lease / 3):
                try:
                    renew(db, self.process_id, self.lease)
                    self.beats += 1
                except Exception:  # the database is away: the next beat tries again
                    log.warning("could not renew the lease of %s", self.process_id, exc_info=True)
                    db.close()
        finally:
            db.close()

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if release:
            try:
                with Database(self.url) as db:
                    drop(db, self.process_id)
            except Exception:
                log.warning("could not drop the lease of %s", self.process_id, exc_info=True)
