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
from services.executions.commands import Expire, Retry, TimeOut
from services.executions.decider import DomainError, ExecutionState, decide
from services.executions.service import ExecutionService, Trace

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
    skipped: int = 0  # candidates the decider refused: nothing to do for them

    @property
    def considered(self) -> int:
        return len(self.timed_out) + len(self.expired) + len(self.retried) + self.skipped


def sweep_timeouts(
    service: ExecutionService, candidates: Iterable[UUID], now: datetime
) -> SweepReport:
    """Fail (code ``timeout``, retryable) every candidate still processing past its deadline."""
    report = SweepReport()
    for execution_id in candidates:
        try:
            service.handle(execution_id, TimeOut(now=now), Trace(causation_id="sweeper"))
        except DomainError:
            report.skipped += 1
        else:
            log.info("execution %s timed out", execution_id)
            report.timed_out.append(execution_id)
    return report


# The wait after failed attempt n: 30 s, doubling per attempt, at most an hour.
RETRY_BACKOFF = Backoff(first=30.0, factor=2.0, cap=3600.0)


def sweep_retries(
    service: ExecutionService,
    candidates: Iterable[tuple[UUID, datetime]],
    now: datetime,
    *,
    max_attempts_for: Callable[[ExecutionState], int] = lambda state: 3,
    backoff: Backoff = RETRY_BACKOFF,
) -> SweepReport:
    """Re-queue failed executions (id, failed_at) whose failure may pass and whose backoff is over.

    A final failure (not retryable) or one that used its last attempt stays failed: the decider
    refuses the ``Retry``. Timeouts count as retryable failures, so a worker that died mid-run
    is replaced here.
    """
    report = SweepReport()
    for execution_id, failed_at in candidates:
        state = service.load(execution_id).state
        wait = timedelta(seconds=backoff.delay(state.attempt))
        if state.error is None or failed_at + wait > now:
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
