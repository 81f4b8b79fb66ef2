"""The sweeper: times out attempts that outlived their deadline, and expires old executions.

It decides nothing itself: for each candidate it sends a command (``TimeOut``, ``Expire``) through
the command service, and the decider refuses the ones that do not apply (already finished,
deadline not passed, expired already). So candidates may be stale or over-inclusive, and two
sweepers running at once time out an attempt only once. The caller finds candidates (the status
read model knows which executions are processing or finished, and since when).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from events.catalog import BlobRef
from events.following import Backoff
from services.blobs.store import BlobStore
from services.executions.commands import Expire, LoseWorker, Retry, TimeOut
from services.executions.decider import DomainError, ExecutionState, Status, decide
from services.executions.service import ExecutionService, Trace
from services.workers.leases import process_of

log = logging.getLogger(__name__)

# How long finished executions keep their files (and so when they expire), by the longest-lived
# container they use: processed outputs 30 days, uploads 7 days, temp 1 day.
RETENTION = {
    "processed": timedelta(days=30),
    "uploads": timedelta(days=7),
    "temp": timedelta(days=1),
}


@dataclass
class SweepReport:
    timed_out: list[UUID] = field(default_factory=list)
    expired: list[UUID] = field(default_factory=list)
    retried: list[UUID] = field(default_factory=list)
    lost: list[UUID] = field(default_factory=list)  # their worker was gone: failed and retried
    skipped: int = 0  # candidates the decider refused: nothing to do for them

    @property
    def considered(self) -> int:
        found = self.timed_out + self.expired + self.retried + self.lost
        return len(found) + self.skipped


# The wait after failed attempt n: 30 s, doubling per attempt, at most an hour.
RETRY_BACKOFF = Backoff(first=30.0, factor=2.0, cap=3600.0)


def _next_attempt(
    state: ExecutionState, now: datetime, max_attempts: int, wait: float
) -> datetime | None:
    return now + timedelta(seconds=wait) if state.attempt < max_attempts else None


def sweep_timeouts(
    service: ExecutionService,
    candidates: Iterable[UUID],
    now: datetime,
    *,
    max_attempts_for: Callable[[ExecutionState], int] = lambda state: 3,
    backoff: Backoff = RETRY_BACKOFF,
) -> SweepReport:
    """Fail (code ``timeout``, retryable) every candidate still processing past its deadline.

    The runner stops a run at its deadline itself (``time_limit``); this catches an attempt
    whose runner is stuck or gone without a lease to say so."""
    report = SweepReport()
    for execution_id in candidates:
        state = service.load(execution_id).state
        allowed = max_attempts_for(state)
        command = TimeOut(
            now=now,
            next_attempt_at=_next_attempt(state, now, allowed, backoff.delay(state.attempt)),
            max_attempts=allowed,
        )
        try:
            service.handle(execution_id, command, Trace(causation_id="sweeper"))
        except DomainError:
            report.skipped += 1
        else:
            log.info("execution %s timed out", execution_id)
            report.timed_out.append(execution_id)
    return report


def sweep_lost(
    service: ExecutionService,
    candidates: Iterable[UUID],
    now: datetime,
    alive: Callable[[set[str]], set[str]],
    *,
    max_attempts_for: Callable[[ExecutionState], int] = lambda state: 3,
) -> SweepReport:
    """Fail with ``worker_lost`` every candidate still processing under a lease that ran out,
    and re-queue it in the same commit when its tool allows another attempt (no backoff: a lost
    worker says nothing about the run).

    ``alive`` answers which of the given process ids still hold their lease. An attempt
    recorded without a lease (before leases) is left to the deadline's timeout.
    """
    report = SweepReport()
    running = []
    for execution_id in candidates:
        known = service.load(execution_id)
        state = known.state
        if state.status is not Status.PROCESSING or not state.lease_seconds or not state.worker_id:
            report.skipped += 1
            continue
        running.append(known)
    living = alive({process_of(k.state.worker_id or "") for k in running})
    for known in running:
        state = known.state
        assert state.worker_id is not None and state.lease_seconds is not None
        if process_of(state.worker_id) in living:
            report.skipped += 1
            continue
        allowed = max_attempts_for(state)
        lose = LoseWorker(
            worker_id=state.worker_id,
            attempt=state.attempt,
            next_attempt_at=_next_attempt(state, now, allowed, 0.0),
            max_attempts=allowed,
        )
        commands: list[LoseWorker | Retry] = [lose]
        if state.attempt < allowed:
            commands.append(Retry(max_attempts=allowed))
        try:
            service.handle(known.id, commands, Trace(causation_id="lease-sweeper"), known=known)
        except DomainError:
            report.skipped += 1
            continue
        log.warning("execution %s: worker %s is gone", known.id, state.worker_id)
        report.lost.append(known.id)
    return report


def sweep_retries(
    service: ExecutionService,
    candidates: Iterable[tuple[UUID, datetime]],
    now: datetime,
    *,
    max_attempts_for: Callable[[ExecutionState], int] = lambda state: 3,
    backoff: Backoff = RETRY_BACKOFF,
) -> SweepReport:
    """Re-queue failed executions (id, failed_at) whose failure may pass and whose wait is over:
    the ``next_attempt_at`` their failure recorded, or (failures recorded before it existed)
    ``failed_at`` plus the backoff.

    A final failure (not retryable) or one that used its last attempt stays failed: the decider
    refuses the ``Retry``. Timeouts count as retryable failures.
    """
    report = SweepReport()
    for execution_id, failed_at in candidates:
        state = service.load(execution_id).state
        due = state.next_attempt_at or failed_at + timedelta(seconds=backoff.delay(state.attempt))
        if state.error is None or due > now:
            report.skipped += 1
            continue
        command = Retry(max_attempts=max_attempts_for(state))
        try:
            service.handle(execution_id, command, Trace(causation_id="retry-sweeper"))
        except DomainError:
            report.skipped += 1
            continue
        log.info("execution %s re-queued for attempt %d", execution_id, state.attempt + 1)
        report.retried.append(execution_id)
    return report


def retention_for(state: ExecutionState) -> timedelta:
    """How long a finished execution is kept: as long as its longest-kept file."""
    containers = {b.container for b in (state.upload, state.output) if b is not None}
    if not containers:
        return RETENTION["uploads"]
    return max(RETENTION[c] for c in containers)


def sweep_retention(
    service: ExecutionService,
    candidates: Iterable[tuple[UUID, datetime]],
    now: datetime,
    remove_blobs: Callable[[ExecutionState], list[BlobRef]] = lambda state: [],
) -> SweepReport:
    """Expire finished executions (id, finished_at) past their retention, removing their blobs."""
    report = SweepReport()
    for execution_id, finished_at in candidates:
        state = service.load(execution_id).state
        try:
            decide(Expire(), state)  # check first: only a finished execution loses its files
        except DomainError:
            report.skipped += 1
            continue
        if finished_at + retention_for(state) > now:
            report.skipped += 1
            continue
        # Blobs first, then the event: if we die in between, the next sweep removes nothing
        # more (removal is idempotent) and records Expired then.
        removed = tuple(remove_blobs(state))
        try:
            service.handle(
                execution_id, Expire(blobs_removed=removed), Trace(causation_id="retention")
            )
        except DomainError:  # another sweeper expired it meanwhile
            report.skipped += 1
            continue
        log.info("execution %s expired; %d blobs removed", execution_id, len(removed))
        report.expired.append(execution_id)
    return report


def remove_execution_blobs(store: BlobStore) -> Callable[[ExecutionState], list[BlobRef]]:
    """The ``remove_blobs`` callback of ``sweep_retention``: deletes the upload and the output.

    It returns every ref of the execution, deleted now or gone already: an earlier sweep may have
    removed the files and died before recording ``Expired``, and the event (recorded once per
    execution) should still say which files went.
    """

    def remove(state: ExecutionState) -> list[BlobRef]:
        refs = [ref for ref in (state.upload, state.output) if ref is not None]
        for ref in refs:
            store.delete(ref.container, ref.name)
        return refs

    return remove
