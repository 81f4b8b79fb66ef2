"""What an owner can do with executions: submit, replay, cancel, retry, delete the files, read
the output. The web, the commands and the tests all come through here.

A submit checks everything before it writes anything: the tool (one registry lookup), its
parameters, the declared file, and, for an idempotency key, whether the decider would take the
``Submit`` (the one stream read); then it streams the upload into blob storage and records
``Submitted`` (and ``Uploaded``, and a sync tool's ``Processing``) in one commit, and runs a sync
tool on a worker of the pool while the request waits. Another owner's execution does not exist
for you. Refusals are ``Problem``s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO
from uuid import UUID, uuid4

from pydantic import ValidationError

from events.catalog import BlobRef, DeclaredInput
from events.errors import validation_summary
from services.blobs.store import BlobNotFound, BlobStore, StorageUnavailable
from services.executions.commands import Cancel, Command, Expire, RecordUpload, Retry, Submit
from services.executions.decider import (
    DomainError,
    ExecutionExists,
    ExecutionNotFound,
    Status,
    owned_by,
)
from services.executions.runner import ToolRunner
from services.executions.service import Execution, ExecutionService, Trace
from services.executions.sweeper import remove_execution_blobs
from services.problems import Problem
from services.tools.base import BaseTool
from services.tools.registry import ToolRegistry, UnknownTool
from services.tools.uploads import UploadRefused, validate_and_store
from services.workers.pool import PoolBusy

# Execution ids derived from (owner, Idempotency-Key): a retried submit with the same key names
# the same execution, so the decider itself refuses a second one.
IDEMPOTENCY_NAMESPACE = UUID("6f1d9a4e-1f5c-4b8e-9a57-2d0c1e7b3a11")
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    source: Iterable[bytes] | BinaryIO
    size: int | None = None  # as declared by the client (Content-Length), if known


@dataclass(frozen=True, slots=True)
class Submission:
    execution: Execution  # as recorded (and run, for a sync tool), or the earlier one repeated
    tool: BaseTool
    created: bool  # False: an idempotent repeat of an accepted submit; nothing was stored


@dataclass(frozen=True, slots=True)
class Download:
    filename: str
    content_type: str
    size: int
    chunks: Iterator[bytes]


def check_params(tool: BaseTool, params: dict[str, Any]) -> dict[str, Any]:
    """The tool's parameters, validated and with defaults filled in, as JSON-ready data."""
    try:
        return tool.Params.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        raise Problem("invalid_params", validation_summary(exc, root="params")) from None


def idempotent_id(owner: str, key: str) -> UUID:
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Problem(
            "invalid_idempotency_key",
            f"an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
        )
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{owner}\n{key}")


def problem(exc: DomainError) -> Problem:
    """A command the decider refused, as the problem its caller answers with."""
    return Problem(exc.code, str(exc), 404 if isinstance(exc, ExecutionNotFound) else 409)


class ExecutionActions:
    def __init__(
        self,
        service: ExecutionService,
        registry: ToolRegistry,
        blobs: BlobStore,
        runner: Callable[[], ToolRunner],
    ) -> None:
        """``runner`` makes a runner for sync runs in place, with this process's worker id."""
        self.service = service
        self.registry = registry
        self.blobs = blobs
        self.runner = runner

    # -- submitting ------------------------------------------------------------------------------

    def submit(
        self,
        owner: str,
        tool: str,
        params: dict[str, Any] | None = None,
        upload: Upload | None = None,
        *,
        idempotency_key: str | None = None,
        trace: Trace | None = None,
        run_sync: bool = True,
    ) -> Submission:
        """Accept an execution of ``tool``: its input is stored, its events are appended, and a
        sync tool has run when this returns (unless ``run_sync`` is off).

        With an ``idempotency_key``, a repeat of an accepted submit returns that execution
        (``created`` False) and stores nothing; the same key for another tool is refused.
        """
        chosen = self._tool(tool)
        command = Submit(
            execution_id=uuid4()
            if idempotency_key is None
            else idempotent_id(owner, idempotency_key),
            tool=chosen.slug,
            category=chosen.category,
            tool_version=chosen.version,
            mode=chosen.mode,
            owner=owner,
            params=check_params(chosen, params or {}),
        )
        if chosen.takes_input and upload is None:
            raise Problem("input_required", f"{chosen.slug} needs an input file")
        known = Execution.new(command.execution_id)
        if idempotency_key is not None:
            known = self.service.load(command.execution_id)
            try:  # asked before the upload is stored: a repeat stores nothing
                self.service.decider.decide(command, known.state)
            except ExecutionExists:
                return self._repeat(known, chosen)
        blob = None
        if upload is not None:
            # A key's id may be submitted twice at once: each upload gets a folder of its own,
            # so the one that loses the race cannot overwrite the other's.
            prefix = str(command.execution_id)
            if idempotency_key is not None:
                prefix += f"/{uuid4().hex[:8]}"
            blob, safe_name = self._store(chosen, upload, prefix)
            declared = DeclaredInput(
                filename=safe_name, size=blob.size, content_type=blob.content_type
            )
            command = replace(command, input=declared)
        run_here = run_sync and chosen.mode == "sync"
        try:
            execution = self._accept(command, blob, known, trace, chosen, run_here)
        except ExecutionExists:  # another submit with this key won the race just now
            return self._repeat(self.service.load(command.execution_id), chosen)
        return Submission(execution, chosen, created=True)

    def replay(self, owner: str | None, original: UUID, *, trace: Trace | None = None) -> Execution:
        """A new execution with the original's tool, parameters and input, linked by
        ``replay_of`` (``owner`` None: any owner's, for operators). The input is copied to the
        new execution's own blob inside the store (``BlobStore.copy``: a hard link on disk, a
        server-side copy on Azure), so expiring either never removes the other's file and a
        500 MB input costs the request no 500 MB."""
        state = self.owned(owner, original).state
        if state.input is not None and state.upload is None:
            raise Problem("input_not_uploaded", f"execution {original} never received its input")
        chosen = self._tool(state.tool, recorded=True)
        command = Submit(
            execution_id=uuid4(),
            tool=state.tool,
            category=state.category,
            tool_version=state.tool_version,
            mode=state.mode,  # type: ignore[arg-type]
            owner=state.owner,
            params=dict(state.params or {}),
            input=state.input,
            replay_of=original,
        )
        copy = None
        if state.upload is not None:
            source = state.upload
            filename = state.input.filename if state.input else source.name.rsplit("/", 1)[-1]
            try:  # inside the store (a link, a server-side copy): no 500 MB through the request
                copy = self.blobs.copy(source, "uploads", f"{command.execution_id}/{filename}")
            except BlobNotFound:
                raise Problem(
                    "input_expired",
                    f"the input of execution {original} is gone (retention removed it)",
                    410,
                ) from None
            except StorageUnavailable as exc:
                raise Problem("storage_unavailable", str(exc), 503) from None
        trace = trace or Trace(correlation_id=str(original), causation_id=f"replay:{original}")
        known = Execution.new(command.execution_id)
        return self._accept(command, copy, known, trace, chosen, chosen.mode == "sync")

    # -- the owner's commands --------------------------------------------------------------------

    def owned(self, owner: str | None, execution_id: UUID) -> Execution:
        """The execution, if it is ``owner``'s (any owner's for None); else not found. One its
        owner deleted is not found for them either (``execution_deleted``, so they can tell);
        operators (None) still reach it."""
        execution = self.service.load(execution_id)
        if not owned_by(execution.state, owner):
            raise Problem("execution_not_found", f"there is no execution {execution_id}", 404)
        if owner is not None and execution.state.deleted:
            raise Problem("execution_deleted", f"execution {execution_id} was deleted", 404)
        return execution

    def cancel(
        self, owner: str, execution_id: UUID, reason: str = "cancelled by its owner"
    ) -> Execution:
        known = self.owned(owner, execution_id)
        return self._handle(known, Cancel(reason=reason), "api:cancel")

    def retry(self, owner: str, execution_id: UUID) -> Execution:
        """The next attempt of a failed execution now, rather than when its automatic retry is
        due; a sync tool's runs here and now. A final failure (not retryable, or its last
        attempt used) is refused with 409 (``not_retryable``, ``attempts_exhausted``): a new run
        of it is a replay, which counts as a submit."""
        known = self.owned(owner, execution_id)
        tool = self._tool(known.state.tool, recorded=True)
        command = Retry(max_attempts=known.state.max_attempts or tool.max_attempts, by_owner=True)
        execution = self._handle(known, command, "api:retry")
        if tool.mode == "sync":
            report = self.runner().run(execution, tool=tool)
            execution = report.execution or self.service.load(execution_id)
        return execution

    def delete(self, owner: str, execution_id: UUID) -> Execution:
        """Delete a finished execution: its files now, and the execution from its owner's API
        and UI (``Expired`` with ``deleted``: reads answer 404 ``execution_deleted``). Its
        stream, the audit trail, stays. One retention expired already may be deleted too."""
        known = self.owned(owner, execution_id)
        state = known.state
        try:
            self.service.decider.decide(Expire(deleted=True), state)
        except DomainError:
            raise Problem(
                "execution_not_finished",
                f"execution {execution_id} is {state.status.value}: "
                "cancel it first, or wait for it to finish",
                409,
            ) from None
        try:  # the files first, then the event, as retention does: a retry removes nothing twice
            gone = state.status is Status.EXPIRED  # retention removed them and said so
            refs = () if gone else tuple(remove_execution_blobs(self.blobs)(state))
        except StorageUnavailable as exc:
            raise Problem("storage_unavailable", str(exc), 503) from None
        return self._handle(known, Expire(blobs_removed=refs, deleted=True), "api:delete")

    def output(self, owner: str, execution_id: UUID) -> Download:
        """The output file, opened (a blob that is gone is a 410 now, not a broken 200)."""
        state = self.owned(owner, execution_id).state
        if state.status is Status.EXPIRED:
            raise Problem(
                "output_expired", "the output was removed (deleted or past retention)", 410
            )
        if state.status is not Status.COMPLETED or state.output is None:
            raise Problem(
                "no_output",
                f"execution {execution_id} has no file to download"
                + (" (its result is inline)" if state.result is not None else ""),
                409,
            )
        ref = state.output
        try:
            chunks = self.blobs.get(ref.container, ref.name)
            first = next(chunks, b"")
        except BlobNotFound:
            raise Problem("output_expired", "the output file is gone", 410) from None
        except StorageUnavailable as exc:
            raise Problem("storage_unavailable", str(exc), 503) from None

        def all_chunks() -> Iterator[bytes]:
            if first:
                yield first
            yield from chunks

        return Download(ref.name.rsplit("/", 1)[-1], ref.content_type, ref.size, all_chunks())

    # -- helpers ---------------------------------------------------------------------------------

    def _tool(self, slug: str, *, recorded: bool = False) -> BaseTool:
        """The tool called ``slug``; one an execution ``recorded`` may have gone since (409)."""
        try:
            return self.registry.get(slug)
        except UnknownTool as exc:
            if recorded:
                raise Problem("unknown_tool", f"{exc} any more", 409) from None
            raise Problem("unknown_tool", str(exc), 404) from None

    def _store(self, tool: BaseTool, upload: Upload, prefix: str) -> tuple[BlobRef, str]:
        """Refuses a bad name or declared size before reading a byte; then the content type and
        the real size while streaming into blob storage."""
        try:
            return validate_and_store(
                tool,
                upload.filename,
                upload.source,
                self.blobs,
                name_prefix=prefix,
                declared_size=upload.size,
            )
        except UploadRefused as exc:
            raise Problem(exc.code, str(exc), exc.status) from None
        except StorageUnavailable as exc:
            raise Problem("storage_unavailable", str(exc), 503) from None

    def _accept(
        self,
        command: Submit,
        blob: BlobRef | None,
        known: Execution,
        trace: Trace | None,
        tool: BaseTool,
        run_here: bool,
    ) -> Execution:
        """Submitted (and Uploaded with an input, and Processing when the tool runs here) in one
        commit, then the run; the stored blob is removed again if nothing comes to refer to it.

        A run here first waits for a worker (its time limit counts from now), so Processing is
        recorded under the worker that runs it; when too many requests wait already, nothing is
        recorded and the answer is a 503 to try again later."""
        commands: list[Command] = [command]
        if blob is not None:
            commands.append(RecordUpload(blob=blob))
        runner = self.runner() if run_here else None
        slot = None
        try:
            if runner is not None:
                accepted = self.service.clock()
                try:
                    slot = runner.reserve(command.owner, tool)
                except PoolBusy as exc:
                    raise Problem(exc.code, str(exc), 503, retry_after=exc.retry_after) from None
                commands.append(runner.start(slot, tool, accepted))
            outcome = self.service.handle(command.execution_id, commands, trace, known=known)
        except BaseException:
            if slot is not None:
                slot.release()
            if blob is not None:
                self.blobs.delete(blob.container, blob.name)
            raise
        if runner is None or slot is None:
            return outcome.execution
        report = runner.run(outcome.execution, trace, tool=tool, slot=slot)
        return report.execution or self.service.load(command.execution_id)

    def _repeat(self, existing: Execution, tool: BaseTool) -> Submission:
        """The answer to a repeated idempotent submit: the first execution, if it was for the
        same tool (the key is the owner's own, so the owner matches by construction)."""
        if existing.state.tool != tool.slug:
            raise Problem(
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request; use a new key",
                422,
            )
        return Submission(existing, tool, created=False)

    def _handle(self, known: Execution, command: Command, cause: str) -> Execution:
        try:
            outcome = self.service.handle(known.id, command, Trace(causation_id=cause), known=known)
        except DomainError as exc:
            raise problem(exc) from None
        return outcome.execution
