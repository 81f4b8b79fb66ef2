"""Submitting an execution: check everything first, store the input, then record the facts.

The order is what keeps a refused submission from leaving anything behind: parameters and the
declared file are checked before any byte is stored, and the upload is streamed into blob
storage (sniffed and size-limited on the way) before ``Submitted`` is appended. A refused upload
therefore writes no event and leaves no blob; an accepted one becomes ``Submitted`` followed by
``Uploaded``. The caller runs a sync tool's execution at once (a ``ToolRunner``); an async one
waits for a worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO
from uuid import UUID, uuid4

from pydantic import ValidationError

from events.catalog import BlobRef, DeclaredInput
from events.store import NO_STREAM
from services.blobs.store import BlobStore
from services.executions.commands import Command, RecordUpload, Start, Submit
from services.executions.decider import ExecutionExists, Status, initial_state
from services.executions.service import ExecutionService, Trace
from services.tools.base import BaseTool
from services.tools.registry import ToolRegistry
from services.tools.uploads import UploadRefused, validate_and_store


class SubmissionRefused(ValueError):
    """The submission cannot be accepted as it is; nothing was written."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    source: Iterable[bytes] | BinaryIO
    size: int | None = None  # as declared by the client (Content-Length), if known


def check_params(tool: BaseTool, params: dict[str, Any]) -> dict[str, Any]:
    """The tool's parameters, validated and with defaults filled in, as JSON-ready data."""
    try:
        return tool.Params.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise SubmissionRefused("invalid_params", detail) from None


def submit(
    service: ExecutionService,
    registry: ToolRegistry,
    blobs: BlobStore,
    *,
    tool: str,
    owner: str,
    params: dict[str, Any] | None = None,
    upload: Upload | None = None,
    execution_id: UUID | None = None,
    trace: Trace | None = None,
    start_as: str | None = None,
) -> UUID:
    """Accept an execution of ``tool``: its events are appended, its input is stored.

    ``start_as`` (a worker id) records a sync tool's first attempt as started by that worker in
    the same commit: a request that runs the tool at once then calls ``ToolRunner.run(...,
    started_here=True)``, one commit fewer than a separate Start.
    """
    try:
        chosen = registry.get(tool)
    except LookupError as exc:
        raise SubmissionRefused("unknown_tool", str(exc), 404) from None
    clean_params = check_params(chosen, params or {})
    # A caller-chosen id (an idempotency key's) may be submitted twice at once: each upload then
    # gets a folder of its own, so the one that loses the race cannot overwrite the other's.
    name_prefix = None if execution_id is None else f"{execution_id}/{uuid4().hex[:8]}"
    if execution_id is None:
        execution_id = uuid4()
    elif service.load(execution_id)[1] != NO_STREAM:
        # Checked before the upload is stored: it would land on the existing execution's input.
        raise SubmissionRefused("execution_exists", f"execution {execution_id} exists", 409)
    if chosen.takes_input and upload is None:
        raise SubmissionRefused("input_required", f"{chosen.slug} needs an input file")
    declared = None
    blob = None
    try:
        if upload is not None:
            # Refuses an upload to a tool without input, a bad name or declared size before
            # reading a byte; then the content type and the real size while streaming.
            blob, safe_name = validate_and_store(
                chosen,
                upload.filename,
                upload.source,
                blobs,
                name_prefix=name_prefix or str(execution_id),
                declared_size=upload.size,
            )
            declared = DeclaredInput(
                filename=safe_name, size=blob.size, content_type=blob.content_type
            )
    except UploadRefused as exc:
        raise SubmissionRefused(exc.code, str(exc), exc.status) from None
    command = Submit(
        execution_id=execution_id,
        tool=chosen.slug,
        category=chosen.category,
        tool_version=chosen.version,
        mode=chosen.mode,
        owner=owner,
        params=clean_params,
        input=declared,
    )
    start = None
    if start_as is not None and chosen.mode == "sync":
        start = Start(worker_id=start_as, now=service.clock(), timeout=chosen.timeout)
    try:
        _record(service, command, blob, trace, start)
    except BaseException:
        if blob is not None:  # nothing refers to it: the events were not written
            blobs.delete(blob.container, blob.name)
        raise
    return execution_id


def _record(
    service: ExecutionService,
    command: Submit,
    blob: BlobRef | None,
    trace: Trace | None,
    start: Start | None = None,
) -> None:
    """Append Submitted (and Uploaded when there is an input, and Processing when the caller
    runs it now) to the new execution's stream, in one commit."""
    commands: list[Command] = [command]
    if blob is not None:
        commands.append(RecordUpload(blob=blob))
    if start is not None:
        commands.append(start)
    try:
        # A new stream: nothing to read first (if it exists after all, the append says so).
        service.handle(command.execution_id, commands, trace, known=(initial_state(), NO_STREAM))
    except ExecutionExists as exc:  # another submission with this id won the race just now
        raise SubmissionRefused("execution_exists", str(exc), 409) from None


def replay(
    service: ExecutionService, blobs: BlobStore, original: UUID, *, trace: Trace | None = None
) -> UUID:
    """A new execution with the original's tool, parameters and input, linked by ``replay_of``.

    The input is copied to the new execution's own blob: the replay keeps it for its own
    retention, and expiring either execution never removes the other's file.
    """
    state, _ = service.load(original)
    if state.status is Status.NEW:
        raise SubmissionRefused("execution_not_found", f"there is no execution {original}", 404)
    if state.input is not None and state.upload is None:
        raise SubmissionRefused(
            "input_not_uploaded", f"execution {original} never received its input file"
        )
    replay_id = uuid4()
    trace = trace or Trace(correlation_id=str(original), causation_id=f"replay:{original}")
    copy = None
    if state.upload is not None:
        source = state.upload
        if not blobs.exists(source.container, source.name):
            raise SubmissionRefused(
                "input_expired",
                f"the input of execution {original} is gone (retention removed it)",
                410,
            )
        filename = state.input.filename if state.input else source.name.rsplit("/", 1)[-1]
        copy = blobs.put(
            "uploads",
            f"{replay_id}/{filename}",
            blobs.get(source.container, source.name),
            content_type=source.content_type,
        )
    command = Submit(
        execution_id=replay_id,
        tool=state.tool,
        category=state.category,
        tool_version=state.tool_version,
        mode=state.mode,  # type: ignore[arg-type]
        owner=state.owner,
        params=dict(state.params or {}),
        input=state.input,
        replay_of=original,
    )
    _record(service, command, copy, trace)
    return replay_id
