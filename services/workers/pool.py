"""A warm pool of worker processes, shared fairly between owners, that supervises each run.

``acquire(owner)`` hands out a ``Slot`` (one worker process) when one is free: owners with
fewer runs than ``per_owner`` go first, the owner with the fewest running first, oldest ticket
first; an owner past its share gets a free worker only when nobody under theirs is waiting, so
one user's burst neither starves the others nor leaves a core idle. A sync request does not
queue without bound: past ``queue_limit`` waiting requests, ``PoolBusy`` (a 503 upstream).

``Slot.run(job, …)`` sends the job, relays progress, and enforces what only a supervisor can:
the wall-clock deadline, the worker's resident memory and the scratch directory's size. A
breach or a cancel kills that worker; the pool starts a new one on next use. Workers are
recycled after ``max_runs`` runs or past ``max_rss`` bytes resident.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.workers import child
from services.workers.child import Answer, Crashed, Done, Job, Refused
from services.workers.limits import (
    DISK_LIMIT,
    MEMORY_LIMIT,
    TIME_LIMIT,
    WORKER_LOST,
    megabytes,
)
from services.workers.process import Worker, scratch_size

log = logging.getLogger(__name__)

CHECK_EVERY = 0.1  # seconds between the supervisor's checks of memory and scratch disk
RSS_CHECK_EVERY = 8  # runs between checks of a worker's resident size for recycling


class PoolBusy(Exception):
    """Every worker is busy and the queue of waiting requests is full: try again later."""

    code = "workers_busy"

    def __init__(self, retry_after: int) -> None:
        super().__init__("every tool worker is busy and the queue is full; try again shortly")
        self.retry_after = retry_after


class PoolClosed(Exception):
    code = "workers_closed"


@dataclass(frozen=True, slots=True)
class Lost:
    """The worker died under the run (killed from outside, crashed): not the run's fault."""

    message: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The supervisor stopped the run because its caller asked (cancelled)."""


Result = Answer | Lost | Stopped


@dataclass
class _Ticket:
    owner: str
    seq: int
    sync: bool
    index: int | None = None  # the worker slot granted
    ready: threading.Event = field(default_factory=threading.Event)  # set when granted


@dataclass
class _State:
    free: list[int]
    running: dict[str, int] = field(default_factory=dict)
    waiting: list[_Ticket] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)  # owner → their latest grant's number
    grants: int = 0


class WorkerPool:
    def __init__(
        self,
        size: int | None = None,
        *,
        process_id: str,
        per_owner: int | None = None,
        queue_limit: int | None = None,
        max_runs: int = 200,
        max_rss: int = 512 * 1024 * 1024,
        nice: int = 10,
    ) -> None:
        self.size = size or os.cpu_count() or 1
        self.process_id = process_id  # names this process in the workers' ids (and its lease)
        self.per_owner = per_owner or max(1, self.size // 2)
        self.queue_limit = queue_limit if queue_limit is not None else 4 * self.size
        self.max_runs = max_runs
        self.max_rss = max_rss
        self.nice = nice
        self._workers: list[Worker | None] = [None] * self.size
        self._lock = threading.Lock()
        self._state = _State(free=list(range(self.size)))
        self._seq = itertools.count()
        self._closed = False
        self._typical_run = 0.0  # seconds a run takes lately (moving average)
        self.started = 0  # worker processes started (the first ones and replacements)

    # -- sharing ---------------------------------------------------------------------------------

    def acquire(
        self,
        owner: str,
        *,
        sync: bool = False,
        timeout: float | None = None,
        budget: float | None = None,
    ) -> Slot:
        """A worker for ``owner``'s run, when it is their turn.

        ``sync`` (a request waits): refuse with ``PoolBusy`` rather than queue past
        ``queue_limit`` waiting requests, or when the wait, judged from how long runs have been
        taking lately, would pass ``budget`` seconds (a request that would mostly wait is told
        to come back instead).
        """
        with self._lock:
            if self._closed:
                raise PoolClosed("the worker pool is closed")
            state = self._state
            if sync and not state.free:
                queued = sum(1 for t in state.waiting if t.sync)
                expected = (queued + 1) * self._typical_run / self.size
                if queued >= self.queue_limit or (budget is not None and expected > budget):
                    raise PoolBusy(retry_after=max(1, math.ceil(expected)))
            ticket = _Ticket(owner, next(self._seq), sync)
            state.waiting.append(ticket)
            self._grant()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # each waiter is woken alone, when its turn comes (no thundering herd)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ticket.ready.wait(left)
            with self._lock:
                if ticket.index is not None:
                    break
                if self._closed:
                    state.waiting.remove(ticket)
                    raise PoolClosed("the worker pool is closed")
                if deadline is not None and time.monotonic() >= deadline:
                    state.waiting.remove(ticket)
                    raise PoolBusy(retry_after=1)
        index = ticket.index
        try:
            worker = self._worker(index)
        except BaseException:
            self._free(index, owner)
            raise
        return Slot(self, worker, owner)

    def _grant(self) -> None:
        """Give free workers to waiting tickets, fairly (the lock is held): owners under their
        share first; among them the one with the fewest running, then the one served longest
        ago (round robin), then the oldest ticket."""
        state = self._state
        while state.free and state.waiting:
            under = [t for t in state.waiting if state.running.get(t.owner, 0) < self.per_owner]
            ticket = min(
                under or state.waiting,
                key=lambda t: (
                    state.running.get(t.owner, 0),
                    state.served.get(t.owner, -1),
                    t.seq,
                ),
            )
            state.waiting.remove(ticket)
            ticket.index = state.free.pop(0)
            state.running[ticket.owner] = state.running.get(ticket.owner, 0) + 1
            state.grants += 1
            state.served[ticket.owner] = state.grants
            ticket.ready.set()
        if len(state.served) > 4096:  # forget owners with nothing running or waiting
            active = set(state.running) | {t.owner for t in state.waiting}
            state.served = {o: n for o, n in state.served.items() if o in active}

    def _observe(self, seconds: float) -> None:
        """A run took ``seconds``: the moving average sync admission judges waits by."""
        with self._lock:
            self._typical_run += 0.2 * (seconds - self._typical_run)

    def _free(self, index: int, owner: str) -> None:
        with self._lock:
            state = self._state
            state.free.append(index)
            state.running[owner] -= 1
            if not state.running[owner]:
                del state.running[owner]
            self._grant()

    def _worker(self, index: int) -> Worker:
        worker = self._workers[index]
        if worker is None or not worker.alive():
            if worker is not None:
                worker.conn.close()
            worker = self._workers[index] = Worker(index, self.nice)
            self.started += 1
        return worker

    def _discard(self, worker: Worker, *, kill: bool) -> None:
        if self._workers[worker.index] is worker:
            self._workers[worker.index] = None
        if kill:
            worker.kill()
        else:
            worker.retire()

    # -- state -----------------------------------------------------------------------------------

    def warm(self) -> None:
        """Start every free worker now, so the first runs do not wait for one."""
        with self._lock:
            if not self._closed:
                for index in list(self._state.free):
                    self._worker(index)

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w is not None and w.alive()]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "size": self.size,
                "busy": self.size - len(self._state.free),
                "waiting": len(self._state.waiting),
                "running_by_owner": dict(self._state.running),
                "started": self.started,
                "typical_run_s": round(self._typical_run, 4),
            }

    def close(self) -> None:
        """Stop every worker (a run still going is killed: its caller reports the worker lost)."""
        with self._lock:
            self._closed = True
            for ticket in self._state.waiting:
                ticket.ready.set()
            workers = [w for w in self._workers if w is not None]
            self._workers = [None] * self.size
        for worker in workers:
            worker.kill()


class Slot:
    """One worker, held for one run (and released by ``release`` or leaving the ``with``)."""

    def __init__(self, pool: WorkerPool, worker: Worker, owner: str) -> None:
        self.pool = pool
        self.worker = worker
        self.owner = owner
        self._released = False
        self._healthy = True

    @property
    def worker_id(self) -> str:
        """``<process id>/<worker pid>``: the process holds the lease, the pid runs the tool."""
        return f"{self.pool.process_id}/{self.worker.pid}"

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        worker, pool = self.worker, self.pool
        if not self._healthy or not worker.alive():
            pool._discard(worker, kill=True)
        elif worker.runs >= pool.max_runs or (
            worker.runs % RSS_CHECK_EVERY == 0 and child.resident(worker.pid) > pool.max_rss
        ):
            pool._discard(worker, kill=False)  # recycled: a fresh one next time
        pool._free(worker.index, self.owner)

    def run(
        self,
        job: Job,
        *,
        deadline: float,
        on_progress: Callable[[float, str], None] = lambda percent, message: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Result:
        """Run ``job`` in this slot's worker until it answers, or until a limit or a stop.

        ``deadline`` is a ``time.monotonic()`` time: the run's wall-clock limit.
        """
        worker = self.worker
        worker.runs += 1
        began = time.monotonic()
        try:
            return self._supervise(job, deadline, on_progress, should_stop)
        finally:
            self.pool._observe(time.monotonic() - began)

    def _supervise(
        self,
        job: Job,
        deadline: float,
        on_progress: Callable[[float, str], None],
        should_stop: Callable[[], bool],
    ) -> Result:
        worker, limits = self.worker, job.limits
        try:
            worker.conn.send(job)
        except (BrokenPipeError, OSError):
            self._healthy = False
            return Lost(f"worker {worker.pid} was gone before the run began")
        baseline: int | None = None  # read at the first check: a quick run needs none
        next_check = time.monotonic() + CHECK_EVERY
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                self._kill()
                return Refused(
                    TIME_LIMIT, f"the run passed its time limit of {limits.time_s:g} s", False
                )
            try:
                ready = worker.conn.poll(min(CHECK_EVERY, left))
                message = worker.conn.recv() if ready else None
            except (EOFError, OSError):
                return self._died()
            if isinstance(message, tuple):  # ("progress", percent, text)
                on_progress(message[1], message[2])
            elif message is not None:
                if isinstance(message, Refused) and message.exit:
                    self._healthy = False
                return message
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + CHECK_EVERY
            if not worker.alive():
                return self._died()
            if baseline is None:
                baseline = child.resident(worker.pid)
            used = child.resident(worker.pid) - baseline
            if used > limits.memory:
                self._kill()
                return Refused(
                    MEMORY_LIMIT,
                    f"the run used more than its {megabytes(limits.memory)} of memory",
                    False,
                )
            if scratch_size(job.scratch) > limits.scratch:
                self._kill()
                return Refused(
                    DISK_LIMIT,
                    f"the run wrote more than its {megabytes(limits.scratch)} of scratch files",
                    False,
                )
            if should_stop():
                self._kill()
                return Stopped()

    def _kill(self) -> None:
        self._healthy = False
        self.worker.kill()

    def _died(self) -> Result:
        """The pipe closed or the process ended without an answer: how did it end?"""
        self._healthy = False
        process = self.worker.process
        process.join(2)
        code = process.exitcode
        if code == -signal.SIGXCPU:
            return Refused(TIME_LIMIT, "the run used more than its CPU time limit", False)
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        log.warning("tool worker %s %s mid-run", self.worker.pid, how)
        return Lost(f"the worker process {how} mid-run")


__all__ = [
    "WORKER_LOST",
    "Crashed",
    "Done",
    "Job",
    "Lost",
    "PoolBusy",
    "PoolClosed",
    "Refused",
    "Result",
    "Slot",
    "Stopped",
    "WorkerPool",
]
