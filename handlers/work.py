"""What the Functions do, one plain function each, so ``function_app.py`` stays declarations.

Event Grid delivers at least once and in no particular order, so ``on_execution_event`` trusts
only the execution id in the subject: the runner reads the stream and acts on its state. A
duplicate delivery, or an ``Uploaded`` arriving after the attempt began, finds nothing to do.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import azure.functions as func

from events.catalog import Retried
from events.database import Database
from handlers.bootstrap import Parts
from projections import status
from services.blobs.retention import sweep_temp
from services.executions.decider import ExecutionState
from services.executions.runner import RunReport
from services.executions.service import Trace
from services.executions.sweeper import (
    SweepReport,
    remove_execution_blobs,
    sweep_lost,
    sweep_retention,
    sweep_retries,
    sweep_timeouts,
)
from services.tools.registry import UnknownTool
from services.webhooks.delivery import DeliveryReport
from services.workers import leases

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3


class BadDelivery(ValueError):
    """An Event Grid event that is not about an execution: nothing to retry, dead-letter it."""

    code = "bad_delivery"


def execution_id_of(subject: str) -> UUID:
    """``/tools/<category>/<tool>/executions/<uuid>`` → the uuid."""
    parts = subject.strip("/").split("/")
    if len(parts) != 5 or parts[0] != "tools" or parts[3] != "executions":
        raise BadDelivery(f"subject {subject!r} does not name an execution")
    try:
        return UUID(parts[4])
    except ValueError:
        raise BadDelivery(f"subject {subject!r} does not end in an execution id") from None


def event_type_of(event: func.EventGridEvent | func.CloudEvent) -> str:
    """The type, whichever schema Event Grid delivered: the Functions worker hands a
    ``func.CloudEvent`` (``type``) for CloudEvents, a ``func.EventGridEvent`` (``event_type``)
    for the Event Grid schema."""
    if isinstance(event, func.EventGridEvent):
        return event.event_type
    return event.type


def on_execution_event(parts: Parts, event: func.EventGridEvent | func.CloudEvent) -> RunReport:
    """Run the execution's next attempt if it is waiting for one (Submitted/Uploaded/Retried)."""
    execution_id = execution_id_of(event.subject or "")
    trace = Trace(causation_id=event.id)
    event_type = event_type_of(event)
    # Sync executions run inline in the request that submitted them; only their retries
    # come here (the request is long gone by then).
    async_only = not event_type.endswith(f".{Retried.name}")
    report = parts.runner().run(execution_id, trace, async_only=async_only)
    log.info("%s %s: %s %s", event_type, execution_id, report.outcome, report.detail)
    return report


def max_attempts_for(parts: Parts, state: ExecutionState) -> int:
    try:
        return parts.registry.get(state.tool).max_attempts
    except UnknownTool:
        return DEFAULT_MAX_ATTEMPTS


# The runner stops a run at its deadline itself; the sweeper's timeout is for a runner that
# cannot (stuck, or gone without a lease), so it waits this much longer.
TIMEOUT_GRACE = timedelta(seconds=30)


def sweep(parts: Parts, now: datetime | None = None) -> tuple[SweepReport, SweepReport]:
    """Fail and re-queue the runs of workers whose lease ran out, time out attempts past their
    deadline, then re-queue retryable failures whose wait is over.

    Returns the timeout report (with the lost runs in ``lost``) and the retry report.
    """
    now = now or datetime.now(UTC)
    service = parts.service
    allowed = lambda s: max_attempts_for(parts, s)  # noqa: E731
    with Database(parts.read_models_url) as db:
        leases.setup(db)
        processing = [UUID(r.execution_id) for r in status.in_status(db, ["processing"])]
        lost = sweep_lost(
            service,
            processing,
            now,
            lambda ids: leases.alive(db, ids, now),
            max_attempts_for=allowed,
        )
        gone = set(lost.lost)
        timeouts = sweep_timeouts(
            service,
            [p for p in processing if p not in gone],
            now - TIMEOUT_GRACE,
            max_attempts_for=allowed,
            backoff=parts.retry_backoff,
        )
        timeouts.lost = lost.lost
        failed = [
            (UUID(r.execution_id), r.finished_at or r.updated_at)
            for r in status.in_status(db, ["failed", "retrying"])
            if r.error_retryable
        ]
        leases.forget_expired(db, timedelta(days=1), now)
    # The timeouts just recorded are not in the read model yet: they go on the next sweep.
    retries = sweep_retries(
        service, failed, now, max_attempts_for=allowed, backoff=parts.retry_backoff
    )
    return timeouts, retries


def expire(parts: Parts, now: datetime | None = None) -> tuple[SweepReport, int]:
    """Remove the files of executions past retention (recording Expired) and stale temp files.

    Returns the expiry report and how many temp files were removed.
    """
    now = now or datetime.now(UTC)
    with Database(parts.read_models_url) as db:
        finished = [
            (UUID(r.execution_id), r.finished_at or r.updated_at)
            for r in status.in_status(db, ["completed", "failed", "cancelled"])
        ]
    report = sweep_retention(parts.service, finished, now, remove_execution_blobs(parts.blobs))
    removed = sweep_temp(parts.blobs, now)
    log.info(
        "retention: %d executions expired, %d temp files removed", len(report.expired), removed
    )
    return report, removed


def relay(parts: Parts, give_up_after: float = 50.0) -> int:
    """Publish every event the outbox relay has not yet published; how many went out.

    Without a topic (the local deployment, where the host delivers from the feed) it does
    nothing. A publish that keeps failing is retried with backoff for ``give_up_after`` seconds;
    the next timer run tries again from the same checkpoint.
    """
    outbox = parts.relay()
    if outbox is None:
        return 0
    stop = threading.Event()
    deadline = threading.Timer(give_up_after, stop.set)
    deadline.daemon = True
    deadline.start()
    try:
        sent = outbox.run_once(stop)
    finally:
        deadline.cancel()
    if sent:
        log.info("relay: %d events published to Event Grid", sent)
    return sent


def deliver_webhooks(parts: Parts, budget_seconds: float = 50.0) -> DeliveryReport:
    """Turn new events into user-webhook messages and deliver what is due, for up to
    ``budget_seconds`` (the timer's next run, 10 s later, takes over what is left); then delete
    the messages past retention (``WEBHOOK_MESSAGE_RETENTION_DAYS``) with their attempts."""
    dispatcher = parts.dispatcher()
    report = dispatcher.run_once(budget_seconds=budget_seconds)
    report.swept = dispatcher.sweep()
    if report.messages or report.attempts or report.errors or report.swept:
        log.info(
            "webhooks: %d new messages, %d delivered, %d to retry, %d failed, %d errors, "
            "%d past retention deleted",
            report.messages,
            report.delivered,
            report.retrying,
            report.failed,
            report.errors,
            report.swept,
        )
    return report
