"""The web's side of executions: whose they are, and how they are shown.

The API, the UI and the live updates come through here. Writes name the acting user's owner id to
``services.executions.actions``, which checks, decides and records; reads come from the status
projection, or from the stream itself when the projector has not reached it yet, so a client
always reads its own writes. Each function returns the execution as plain data.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse

from events.envelope import RecordedEvent
from projections import history, status as status_model
from projections.status import ExecutionStatus
from services.executions import decider
from services.executions.actions import Download, ExecutionActions, Upload
from services.executions.decider import Status
from services.executions.service import Execution
from services.problems import Problem
from services.tools.base import BaseTool
from web.parts import parts

log = logging.getLogger(__name__)

DELETE_SETTLE_SECONDS = 2.0  # how long a delete waits for the reads to drop the execution

# A page's position: microseconds since 1970 of the last run's submit (16 digits reach past
# 2200) and its id, as hex. Opaque to clients; the schema documents the pattern.
CURSOR_PATTERN = r"^[0-9]{1,16}~[0-9a-f]{32}$"
CURSOR = re.compile(CURSOR_PATTERN)  # use with fullmatch
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

STATUSES = tuple(s.value for s in Status if s is not Status.NEW)  # what an execution can be


def owner_of(user: Any) -> str:
    """The ``owner`` recorded in an execution's events for a Django user."""
    return str(user.pk)


def _actions() -> ExecutionActions:
    return parts().executions


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _tool_name(slug: str) -> str:
    try:
        return parts().registry.get(slug).name
    except LookupError:
        return slug


def decided_status(row: ExecutionStatus) -> Status:
    """The decider's status for a row: a failure whose automatic retry is pending reads
    ``retrying`` but is still ``failed`` to the decider (it takes a ``Retry`` to re-queue it)."""
    if row.status == Status.RETRYING and row.next_attempt_at is not None:
        return Status.FAILED
    return Status(row.status)


def represent(row: ExecutionStatus, tool: BaseTool | None = None) -> dict[str, Any]:
    """An execution as the API and the live updates show it (``tool``: its tool, if at hand).

    ``finished`` is the row's own status: a pending retry (``retrying``) is never finished. The
    ``actions`` are the commands the decider accepts, so they follow its status instead.
    """
    status = Status(row.status)
    decided = decided_status(row)
    output_filename = row.output_blob.rsplit("/", 1)[-1] if row.output_blob else None
    actions = decider.actions(
        decided,
        awaiting_input=bool(row.input_filename and not row.input_blob),
        has_output=output_filename is not None,
        retry_pending=row.next_attempt_at is not None and decided is Status.FAILED,
    )
    api = f"/api/v1/executions/{row.execution_id}/"
    return {
        "id": row.execution_id,
        "tool": row.tool,
        "tool_name": tool.name if tool is not None else _tool_name(row.tool),
        "category": row.category,
        "mode": row.mode,
        "status": row.status,
        "finished": status in decider.FINISHED,
        "percent": float(row.percent),
        "progress_message": row.progress_message,
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "input_filename": row.input_filename,
        "result": row.result,
        "output_filename": output_filename,
        "duration_ms": row.duration_ms,
        "error": (
            {
                "code": row.error_code,
                "message": row.error_message,
                "retryable": bool(row.error_retryable),
            }
            if row.error_code and decided is Status.FAILED  # failed, or its retry is pending
            else None
        ),
        "submitted_at": _iso(row.submitted_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "updated_at": _iso(row.updated_at),
        "replay_of": row.replay_of,
        "version": row.stream_version,
        "actions": actions,
        "links": {
            "self": api,
            "events": f"{api}events/",
            "download": f"{api}download/" if "download" in actions else None,
            "page": reverse("execution-detail", args=[row.execution_id]),
        },
    }


def _shown(execution: Execution, tool: BaseTool | None = None) -> dict[str, Any]:
    """An execution the service just read or wrote, shown from its stream (no further read)."""
    row = status_model.from_events(execution.stream)
    assert row is not None  # an execution the service acted on has a Submitted
    return represent(row, tool)


# -- reading ------------------------------------------------------------------------------------


def get(user: Any, execution_id: UUID) -> dict[str, Any]:
    """The user's execution: the projection's row, or its own stream's when that has none."""
    try:
        row = status_model.get(parts().read_models(), str(execution_id))
    except Exception:  # no read models yet (never migrated): the stream still answers
        log.debug("status projection unreadable; folding the stream", exc_info=True)
        row = None
    if row is None:
        return _shown(_actions().owned(owner_of(user), execution_id))
    if row.owner != owner_of(user):
        raise Problem("execution_not_found", f"there is no execution {execution_id}", 404)
    return represent(row)


@dataclass(frozen=True, slots=True)
class Page:
    results: list[dict[str, Any]]
    next_cursor: str | None


def listing(
    user: Any,
    *,
    tool: str | None = None,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """The user's executions, newest first, a page at a time (keyset: stable under inserts)."""
    db = parts().read_models()
    runs = history.recent(
        db,
        owner_of(user),
        tool or None,
        limit + 1,
        status=status or None,
        before=_decode_cursor(cursor) if cursor else None,
    )
    page = runs[:limit]
    found = {r.execution_id: r for r in status_model.get_many(db, [r.execution_id for r in page])}
    results = [represent(found[r.execution_id]) for r in page if r.execution_id in found]
    last = page[-1] if len(runs) > limit else None
    return Page(results, _encode_cursor(last.submitted_at, last.execution_id) if last else None)


def recent(user: Any, tool: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
    return listing(user, tool=tool, limit=limit).results


def _encode_cursor(submitted_at: datetime, execution_id: str) -> str:
    micros = (submitted_at.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)
    return f"{micros}~{UUID(execution_id).hex}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """A cursor the API gave out: every string ``CURSOR_PATTERN`` matches decodes, so one the
    schema allows is never refused (it may start a page nobody was given: that is all)."""
    if not CURSOR.fullmatch(cursor):
        raise Problem("invalid_cursor", "the cursor is not one this API gave out")
    micros, execution_id = cursor.split("~")
    return EPOCH + timedelta(microseconds=int(micros)), str(UUID(execution_id))


def timeline(user: Any, execution_id: UUID) -> list[dict[str, Any]]:
    """The execution's audit stream, as CloudEvents (each with its one-line ``summary``)."""
    execution = _actions().owned(owner_of(user), execution_id)
    return [timeline_entry(event) for event in execution.stream]


def timeline_entry(event: RecordedEvent) -> dict[str, Any]:
    """An event as the API and the live updates show it: the CloudEvent the store holds, plus
    ``summary``, the line a person reads (not part of the stored event)."""
    return {**event.to_cloudevent(), "summary": event.payload().summary()}


# -- writing ------------------------------------------------------------------------------------


def submit(
    user: Any,
    tool: str,
    params: dict[str, Any],
    upload: UploadedFile | None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Submit an execution; a sync tool's has run when this returns. ``(execution, created)``."""
    submission = _actions().submit(
        owner_of(user),
        tool,
        params,
        Upload(upload.name or "upload", upload.chunks(), upload.size) if upload else None,
        idempotency_key=idempotency_key,
    )
    return _shown(submission.execution, submission.tool), submission.created


def cancel(user: Any, execution_id: UUID) -> dict[str, Any]:
    return _shown(_actions().cancel(owner_of(user), execution_id))


def retry(user: Any, execution_id: UUID) -> dict[str, Any]:
    return _shown(_actions().retry(owner_of(user), execution_id))


def replay(user: Any, execution_id: UUID) -> dict[str, Any]:
    """Run the execution again as a new one (same tool, parameters and a copy of its input)."""
    return _shown(_actions().replay(owner_of(user), execution_id))


def delete(user: Any, execution_id: UUID) -> dict[str, Any]:
    """Delete the execution: its files now, and the execution from the user's reads (``Expired``
    with ``deleted``); its stream, the audit trail, stays. Returns it as it was last shown.

    Returns once the status read model has dropped it (the projector is nudged by the commit),
    so the user's next read, fast path included, already answers 404; a projector that is down
    costs at most ``DELETE_SETTLE_SECONDS`` here, and its row goes when it catches up."""
    shown = _shown(_actions().delete(owner_of(user), execution_id))
    deadline = time.monotonic() + DELETE_SETTLE_SECONDS
    while time.monotonic() < deadline:
        try:
            if status_model.get(parts().read_models(), str(execution_id)) is None:
                break
        except Exception:  # no read models (never migrated): nothing there to wait for
            log.debug("status projection unreadable after delete", exc_info=True)
            break
        time.sleep(0.02)
    return shown


def download(user: Any, execution_id: UUID) -> Download:
    return _actions().output(owner_of(user), execution_id)
