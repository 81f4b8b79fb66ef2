"""The command service: the only writer of execution streams.

load the stream → fold it with the decider → ``decide`` → wrap the events in envelopes → append
at the version that was read. If another writer appended in between, the append is refused
(optimistic concurrency) and the service reads and decides again, so two workers racing to start
one execution produce exactly one ``Processing`` and the loser gets the domain error its command
now deserves.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from events.catalog import EventPayload
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
from services.executions import decider as rules
from services.executions.commands import Command, Submit
from services.executions.decider import Decider, DomainError, ExecutionState

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
class Execution:
    """One execution as the service last read or wrote it: its state, its stream's last version
    (-1 when there is none) and the stream itself. Handing it back to ``handle`` as ``known``
    spares a read; a stale one costs a read, never a wrong event."""

    id: UUID
    state: ExecutionState
    version: int
    stream: tuple[RecordedEvent, ...] = ()

    @classmethod
    def new(cls, execution_id: UUID) -> Execution:
        """An execution with no stream yet (what a fresh id is)."""
        return cls(execution_id, rules.initial_state(), NO_STREAM)


@dataclass(frozen=True, slots=True)
class Outcome:
    execution: Execution  # after the command
    events: tuple[NewEvent, ...]  # what the command appended
    append: AppendResult

    @property
    def state(self) -> ExecutionState:
        return self.execution.state

    @property
    def version(self) -> int:
        return self.execution.version


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class ExecutionService:
    def __init__(
        self,
        store: EventStore,
        *,
        source: str = DEFAULT_SOURCE,
        decider: Decider[Command, EventPayload, ExecutionState] = rules.execution,
        max_conflict_retries: int = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.source = source
        self.decider = decider
        self.max_conflict_retries = max_conflict_retries
        self.clock = clock

    # -- reading -----------------------------------------------------------------------------

    def history(self, execution_id: UUID) -> list[RecordedEvent]:
        return self.store.read_stream(execution_stream(execution_id))

    def load(self, execution_id: UUID) -> Execution:
        """The execution as its stream says now (an initial state when there is none)."""
        stream = tuple(self.history(execution_id))
        state = self.decider.fold(e.payload() for e in stream)
        return Execution(execution_id, state, stream[-1].version if stream else NO_STREAM, stream)

    def state_at(
        self, execution_id: UUID, *, version: int | None = None, at: datetime | None = None
    ) -> ExecutionState:
        """Time travel: the state as of a stream version, or as of a moment."""
        events = self.history(execution_id)
        if version is not None:
            events = [e for e in events if e.version <= version]
        if at is not None:
            events = [e for e in events if e.time <= at]
        return self.decider.fold(e.payload() for e in events)

    # -- writing -----------------------------------------------------------------------------

    def handle(
        self,
        execution_id: UUID,
        command: Command | Sequence[Command],
        trace: Trace | None = None,
        *,
        known: Execution | None = None,
    ) -> Outcome:
        """Decide ``command`` against the execution's latest state and append what it yields.

        A sequence of commands is decided in turn, each on the state the previous one leads
        to, and appended as one batch: all of them happen, or none (one commit instead of one
        each, e.g. Submit, RecordUpload and a sync run's Start).

        ``known`` is the execution as the caller holds it (an earlier outcome, a load, or
        ``Execution.new``): the first decision uses it instead of reading the stream. If it is
        stale the append is refused and the service reads and decides again.
        """
        commands = [command] if not isinstance(command, Sequence) else list(command)
        trace = trace or Trace()
        stream = execution_stream(execution_id)
        for _ in range(self.max_conflict_retries + 1):
            assumed = known is not None
            current, known = known or self.load(execution_id), None
            try:
                payloads: list[EventPayload] = []
                decided = current.state
                for each in commands:
                    for payload in self.decider.decide(each, decided):
                        payloads.append(payload)
                        decided = self.decider.evolve(decided, payload)
            except DomainError:
                if assumed:  # the caller's view may be stale: decide on the stream's own
                    continue
                raise  # nothing to write
            events = self._envelopes(execution_id, commands[0], current.state, payloads, trace)
            try:
                result = self.store.append(stream, events, current.version)
            except WrongExpectedVersion:
                log.debug("%s: stream moved past %s, deciding again", stream, current.version)
                continue
            if result.duplicate:  # these very events were stored before: read what is there
                return Outcome(self.load(execution_id), tuple(events), result)
            after = Execution(
                execution_id, decided, result.last_version, current.stream + result.recorded
            )
            return Outcome(after, tuple(events), result)
        raise ConcurrencyConflict(
            f"{stream}: {self.max_conflict_retries + 1} attempts lost the race to other writers"
        )

    def _envelopes(
        self,
        execution_id: UUID,
        first: Command,
        state: ExecutionState,
        payloads: list[EventPayload],
        trace: Trace,
    ) -> list[NewEvent]:
        if isinstance(first, Submit):
            subject = execution_subject(first.category, first.tool, execution_id)
        else:
            subject = execution_subject(state.category, state.tool, execution_id)
        metadata = {
            "correlationid": trace.correlation_id or str(execution_id),
            "traceparent": trace.traceparent or new_traceparent(),
        }
        if trace.causation_id:
            metadata["causationid"] = trace.causation_id
        now = self.clock()
        return [
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
