"""The command service: the only writer of execution streams.

load the stream → fold it with ``evolve`` → ``decide`` → append at the version that was read. If
another writer appended in between, the append is refused (optimistic concurrency); the service
reads again and decides again, so two workers racing to start one execution produce exactly one
``Processing`` and the loser gets the domain error its command now deserves.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from events.envelope import (
    DEFAULT_SOURCE,
    NewEvent,
    RecordedEvent,
    execution_stream,
    execution_subject,
    new_event,
)
from events.errors import WrongExpectedVersion
from events.store import NO_STREAM, AppendResult, EventStore
from services.executions.commands import Command, Submit
from services.executions.decider import (
    DomainError,
    ExecutionState,
    decide,
    evolve,
    initial_state,
)

log = logging.getLogger(__name__)

# How long an attempt may run before the sweeper times it out, when its tool does not say
# (each tool declares its own ``timeout``: video tools 30 minutes).
DEFAULT_TIMEOUT = timedelta(minutes=5)


class ConcurrencyConflict(Exception):
    """Other writers kept moving the stream; the command was decided too many times."""

    code = "concurrency_conflict"


@dataclass(frozen=True, slots=True)
class Trace:
    """Who caused a command: carried into every event's CloudEvents extensions."""

    correlation_id: str | None = None  # the conversation; defaults to the execution id
    causation_id: str | None = None  # the event or request that caused this command
    traceparent: str | None = None  # W3C trace context


@dataclass(frozen=True, slots=True)
class Outcome:
    state: ExecutionState  # after the command
    version: int  # the stream's last version after the command
    events: tuple[NewEvent, ...]  # what the command appended
    append: AppendResult


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class ExecutionService:
    def __init__(
        self,
        store: EventStore,
        *,
        source: str = DEFAULT_SOURCE,
        max_conflict_retries: int = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.source = source
        self.max_conflict_retries = max_conflict_retries
        self.clock = clock

    # -- reading -----------------------------------------------------------------------------

    def history(self, execution_id: UUID) -> list[RecordedEvent]:
        return self.store.read_stream(execution_stream(execution_id))

    def load(self, execution_id: UUID) -> tuple[ExecutionState, int]:
        """The execution's current state and its stream's last version (-1 when none)."""
        events = self.history(execution_id)
        return fold_recorded(events), (events[-1].version if events else NO_STREAM)

    def state_at(
        self, execution_id: UUID, *, version: int | None = None, at: datetime | None = None
    ) -> ExecutionState:
        """Time travel: the state as of a stream version, or as of a moment."""
        events = self.history(execution_id)
        if version is not None:
            events = [e for e in events if e.version <= version]
        if at is not None:
            events = [e for e in events if e.time <= at]
        return fold_recorded(events)

    # -- writing -----------------------------------------------------------------------------

    def handle(
        self,
        execution_id: UUID,
        command: Command | Sequence[Command],
        trace: Trace | None = None,
        *,
        known: tuple[ExecutionState, int] | None = None,
    ) -> Outcome:
        """Decide ``command`` against the execution's latest state and append what it yields.

        A sequence of commands is decided in turn, each on the state the previous one leads
        to, and appended as one batch: all of them happen, or none (one commit instead of one
        each, e.g. Submit, RecordUpload and a sync run's Start).

        ``known`` is a (state, version) the caller already holds (an earlier Outcome, or a new
        stream): the first decision uses it instead of reading the stream. If it is stale the
        append is refused and the service reads and decides again, as for any other conflict.
        """
        commands = [command] if not isinstance(command, Sequence) else list(command)
        trace = trace or Trace()
        stream = execution_stream(execution_id)
        for _ in range(self.max_conflict_retries + 1):
            assumed = known is not None
            if known is not None:
                (state, version), known = known, None
            else:
                state, version = self.load(execution_id)
            try:
                payloads = []
                decided = state
                for each in commands:
                    for payload in decide(each, decided):
                        payloads.append(payload)
                        decided = evolve(decided, payload)
            except DomainError:
                if assumed:  # the caller's state may be stale: decide on the stream's own
                    continue
                raise  # nothing to write

            subject = _subject(execution_id, commands[0], state)
            metadata = {
                "correlationid": trace.correlation_id or str(execution_id),
                "traceparent": trace.traceparent or new_traceparent(),
            }
            if trace.causation_id:
                metadata["causationid"] = trace.causation_id
            now = self.clock()
            events = [
                new_event(
                    p,
                    subject=subject,
                    source=self.source,
                    metadata=metadata,
                    time=now,
                    event_id=uuid4(),
                )
                for p in payloads
            ]
            try:
                result = self.store.append(stream, events, version)
            except WrongExpectedVersion:
                log.debug("%s: stream moved past %s, deciding again", stream, version)
                continue
            return Outcome(decided, result.last_version, tuple(events), result)
        raise ConcurrencyConflict(
            f"{stream}: {self.max_conflict_retries + 1} attempts lost the race to other writers"
        )


def fold_recorded(events: list[RecordedEvent]) -> ExecutionState:
    state = initial_state()
    for event in events:
        state = evolve(state, event.payload())
    return state


def _subject(execution_id: UUID, command: Command, state: ExecutionState) -> str:
    if isinstance(command, Submit):
        return execution_subject(command.category, command.tool, execution_id)
    return execution_subject(state.category, state.tool, execution_id)
