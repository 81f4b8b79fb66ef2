"""What a signed-in user can do with executions, shared by the REST API and the UI.

Each function takes the acting user, checks that the execution is theirs (another user's is
"not found", never "forbidden": its existence is not revealed), calls one service and returns the
execution as plain data. Status comes from the status projection; an execution the projector has
not reached yet (just submitted, just cancelled) is folded from its own stream with the same
code, so a client always reads its own writes. Errors are ``Problem``s with a stable ``code``,
which the API renders as problem+json and the UI as a page.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse

from events.envelope import RecordedEvent, execution_stream
from projections import history, status as status_model
from projections.projection import STATUS_AFTER
from projections.status import ExecutionStatus
from services.blobs.retention import remove_execution_blobs
from services.blobs.store import BlobNotFound, StorageUnavailable
from services.executions.commands import Cancel, Expire, Retry
from services.executions.decider import DomainError, ExecutionExists, ExecutionState, Status
from services.executions.service import ExecutionService, Trace
from services.tools.registry import UnknownTool
from services.tools.runner import ToolRunner
from services.tools.submissions import (
    SubmissionRefused,
    Upload,
    replay as replay_execution,
    submit as submit_execution,
)
from web import bootstrap

log = logging.getLogger(__name__)

STATUSES = tuple(dict.fromkeys(STATUS_AFTER.values()))  # every status an execution can have
FINISHED = frozenset({"completed", "failed", "cancelled", "expired"})
# A namespace for execution ids derived from (owner, Idempotency-Key): a retried submit with the
# same key names the same execution, so the event store itself refuses a second one.
IDEMPOTENCY_NAMESPACE = UUID("6f1d9a4e-1f5c-4b8e-9a57-2d0c1e7b3a11")
MAX_IDEMPOTENCY_KEY = 255


class Problem(Exception):
    """An error a user can act on: an HTTP status, a stable ``code`` and a sentence."""

    def __init__(self, code: str, detail: str, status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


def owner_of(user: Any) -> str:
    """The ``owner`` recorded in an execution's events for a Django user."""
    return str(user.pk)


def _not_found(execution_id: UUID | str) -> Problem:
    return Problem("execution_not_found", f"there is no execution {execution_id}", 404)


def _service() -> ExecutionService:
    return bootstrap.execution_service()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _tool_name(slug: str) -> str:
    try:
        return bootstrap.tool_registry().get(slug).name
    except LookupError:
        return slug


def represent(row: ExecutionStatus) -> dict[str, Any]:
    """An execution as the API and the live updates show it."""
    finished = row.status in FINISHED
    output_filename = row.output_blob.rsplit("/", 1)[-1] if row.output_blob else None
    actions = []
    if row.status in {"submitted", "uploaded", "processing", "retrying"}:
        actions.append("cancel")
    if row.status == "failed":
        actions.append("retry")
    if row.status != "expired" and (row.input_blob or not row.input_filename):
        actions.append("replay")
    if finished and row.status != "expired":
        actions.append("delete")
    if row.status == "completed" and output_filename:
        actions.append("download")
    api = f"/api/v1/executions/{row.execution_id}/"
    return {
        "id": row.execution_id,
        "tool": row.tool,
        "tool_name": _tool_name(row.tool),
        "category": row.category,
        "mode": row.mode,
        "status": row.status,
        "finished": finished,
        "percent": float(row.percent),
        "progress_message": row.progress_message,
        "attempt": row.attempt,
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
            if row.error_code and row.status == "failed"
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


# -- reading ------------------------------------------------------------------------------------


def _projected(execution_id: UUID) -> ExecutionStatus | None:
    try:
        return status_model.get(bootstrap.read_models(), str(execution_id))
    except Exception:  # no read models yet (never migrated): the stream still answers
        log.debug("status projection unreadable; folding the stream", exc_info=True)
        return None


def _folded(execution_id: UUID) -> ExecutionStatus | None:
    events = bootstrap.event_store().read_stream(execution_stream(execution_id))
    return status_model.from_events(events)


def _row(user: Any, execution_id: UUID, *, fresh: bool = False) -> ExecutionStatus:
    """The user's execution: the projection's row, or the stream's when that is newer."""
    row = None if fresh else _projected(execution_id)
    if row is None:
        row = _folded(execution_id)
    if row is None or row.owner != owner_of(user):
        raise _not_found(execution_id)
    return row


def get(user: Any, execution_id: UUID) -> dict[str, Any]:
    return represent(_row(user, execution_id))


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
    db = bootstrap.read_models()
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
    return f"{_iso(submitted_at)}~{execution_id}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        when, execution_id = cursor.split("~", 1)
        UUID(execution_id)
        return datetime.fromisoformat(when.replace("Z", "+00:00")), execution_id
    except ValueError:
        raise Problem("invalid_cursor", "the cursor is not one this API gave out") from None


def timeline(user: Any, execution_id: UUID) -> list[dict[str, Any]]:
    """The execution's audit stream, as CloudEvents (each with its one-line ``summary``)."""
    events = bootstrap.event_store().read_stream(execution_stream(execution_id))
    row = status_model.from_events(events)
    if row is None or row.owner != owner_of(user):
        raise _not_found(execution_id)
    return [timeline_entry(event) for event in events]


def timeline_entry(event: RecordedEvent) -> dict[str, Any]:
    """An event as the API and the live updates show it: the CloudEvent the store holds, plus
    ``summary``, the line a person reads (not part of the stored event)."""
    return {**event.to_cloudevent(), "summary": event.payload().summary()}


# -- writing ------------------------------------------------------------------------------------


def _refused(exc: SubmissionRefused) -> Problem:
    return Problem(exc.code, str(exc), exc.status)


def _domain(exc: DomainError) -> Problem:
    return Problem(exc.code, str(exc), 409)


WEB_WORKER = f"web-{os.getpid()}"  # the worker id of sync runs in this process's requests


def _run_sync(execution_id: UUID, *, started_here: bool = False) -> None:
    """Run a sync tool's execution here, in the request, as its caller expects."""
    runner = ToolRunner(
        _service(), bootstrap.blob_store(), bootstrap.tool_registry(), worker_id=WEB_WORKER
    )
    runner.run(execution_id, started_here=started_here)


def idempotent_id(user: Any, key: str) -> UUID:
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Problem(
            "invalid_idempotency_key",
            f"an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
        )
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{owner_of(user)}\n{key}")


def submit(
    user: Any,
    tool: str,
    params: dict[str, Any],
    upload: UploadedFile | None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Submit an execution; a sync tool's has run when this returns. ``(execution, created)``.

    With an ``idempotency_key``, a repeat of a submit that was accepted returns that execution
    (``created`` False) and stores nothing; the same key with another tool is refused.
    """
    execution_id = idempotent_id(user, idempotency_key) if idempotency_key is not None else None
    if execution_id is not None:
        existing = _folded(execution_id)
        if existing is not None:
            return _repeat(user, existing, tool), False
    try:
        execution_id = submit_execution(
            _service(),
            bootstrap.tool_registry(),
            bootstrap.blob_store(),
            tool=tool,
            owner=owner_of(user),
            params=params,
            upload=(
                Upload(upload.name or "upload", upload.chunks(), upload.size)
                if upload is not None
                else None
            ),
            execution_id=execution_id,
            start_as=WEB_WORKER,  # a sync tool's run starts in the submit's own commit
        )
    except SubmissionRefused as exc:
        if exc.code == "execution_exists" and execution_id is not None:
            # Two requests with one key raced; the other one won. Its execution is the answer.
            row = _folded(execution_id)
            if row is not None:
                return _repeat(user, row, tool), False
        raise _refused(exc) from None
    except StorageUnavailable as exc:
        raise Problem("storage_unavailable", str(exc), 503) from None
    if bootstrap.tool_registry().get(tool).mode == "sync":
        _run_sync(execution_id, started_here=True)
    return represent(_row(user, execution_id, fresh=True)), True


def _repeat(user: Any, row: ExecutionStatus, tool: str) -> dict[str, Any]:
    if row.owner != owner_of(user) or row.tool != tool:
        raise Problem(
            "idempotency_key_reused",
            "this Idempotency-Key was used for another request; use a new key",
            422,
        )
    return represent(row)


def _owned(user: Any, execution_id: UUID) -> tuple[ExecutionState, int]:
    """The user's execution as the command service sees it (state, version): read once, and
    handed to the command as ``known``."""
    state, version = _service().load(execution_id)
    if state.status is Status.NEW or state.owner != owner_of(user):
        raise _not_found(execution_id)
    return state, version


def cancel(user: Any, execution_id: UUID, reason: str = "cancelled by its owner") -> dict[str, Any]:
    known = _owned(user, execution_id)
    try:
        _service().handle(
            execution_id, Cancel(reason=reason), Trace(causation_id="api:cancel"), known=known
        )
    except DomainError as exc:
        raise _domain(exc) from None
    return represent(_row(user, execution_id, fresh=True))


def retry(user: Any, execution_id: UUID) -> dict[str, Any]:
    state, version = _owned(user, execution_id)
    try:
        tool = bootstrap.tool_registry().get(state.tool)
    except UnknownTool:
        raise Problem("unknown_tool", f"there is no tool {state.tool!r} any more", 409) from None
    # An owner's retry is a new attempt on top of the ones the tool allows automatically.
    command = Retry(max_attempts=state.attempt + 1, by_owner=True)
    try:
        _service().handle(
            execution_id, command, Trace(causation_id="api:retry"), known=(state, version)
        )
    except DomainError as exc:
        raise _domain(exc) from None
    if tool.mode == "sync":
        _run_sync(execution_id)
    return represent(_row(user, execution_id, fresh=True))


def replay(user: Any, execution_id: UUID) -> dict[str, Any]:
    """Run the execution again as a new one (same tool, parameters and a copy of its input)."""
    _owned(user, execution_id)
    try:
        new_id = replay_execution(_service(), bootstrap.blob_store(), execution_id)
    except SubmissionRefused as exc:
        raise _refused(exc) from None
    except DomainError as exc:
        raise _domain(exc) from None
    state, _ = _service().load(new_id)
    if state.mode == "sync":
        _run_sync(new_id)
    return represent(_row(user, new_id, fresh=True))


def delete(user: Any, execution_id: UUID) -> dict[str, Any]:
    """Remove the execution's files now (``Expired``); its stream, the audit trail, stays."""
    state, version = _owned(user, execution_id)
    if state.status not in {Status.COMPLETED, Status.FAILED, Status.CANCELLED}:
        raise Problem(
            "execution_not_finished" if state.status is not Status.EXPIRED else "already_expired",
            f"execution {execution_id} is {state.status.value}: "
            + (
                "its files are already gone"
                if state.status is Status.EXPIRED
                else "cancel it first, or wait for it to finish"
            ),
            409,
        )
    try:  # the files first, then the event, as retention does: a retry removes nothing twice
        refs = tuple(remove_execution_blobs(bootstrap.blob_store())(state))
    except StorageUnavailable as exc:
        raise Problem("storage_unavailable", str(exc), 503) from None
    try:
        _service().handle(
            execution_id,
            Expire(blobs_removed=refs),
            Trace(causation_id="api:delete"),
            known=(state, version),
        )
    except (DomainError, ExecutionExists) as exc:
        raise _domain(exc) from None
    return represent(_row(user, execution_id, fresh=True))


@dataclass(frozen=True, slots=True)
class Download:
    filename: str
    content_type: str
    size: int
    chunks: Iterator[bytes]


def download(user: Any, execution_id: UUID) -> Download:
    state, _ = _owned(user, execution_id)
    if state.status is Status.EXPIRED:
        raise Problem("output_expired", "the output was removed (deleted or past retention)", 410)
    if state.status is not Status.COMPLETED or state.output is None:
        raise Problem(
            "no_output",
            f"execution {execution_id} has no file to download"
            + (" (its result is inline)" if state.result is not None else ""),
            409,
        )
    ref = state.output
    try:
        chunks = bootstrap.blob_store().get(ref.container, ref.name)
        first = next(chunks, b"")  # opens the blob now: a missing one is an error, not a 200
    except BlobNotFound:
        raise Problem("output_expired", "the output file is gone", 410) from None
    except StorageUnavailable as exc:
        raise Problem("storage_unavailable", str(exc), 503) from None

    def all_chunks() -> Iterator[bytes]:
        if first:
            yield first
        yield from chunks

    return Download(ref.name.rsplit("/", 1)[-1], ref.content_type, ref.size, all_chunks())
