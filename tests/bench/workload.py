"""What every contender writes: execution histories, built with ``new_event`` before timing starts.

An execution is the four events of a job that goes straight through (Submitted, Uploaded,
Processing, Completed) on its own stream. A long execution adds 96 Progress events between
Processing and Completed: 100 events, which the batch measurement appends in one call. Building and
validating events is the caller's work, not the store's, so it is done up front and its cost is
reported separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from events.catalog import BlobRef, Completed, Processing, Progress, Submitted, Uploaded
from events.envelope import NewEvent, execution_stream, execution_subject, new_event

EXECUTION_EVENTS = 4
LONG_EXECUTION_EVENTS = 100
_PROGRESS_STEPS = LONG_EXECUTION_EVENTS - EXECUTION_EVENTS


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution's stream and its events in append order (version i is ``events[i]``)."""

    execution_id: UUID
    stream: str
    events: tuple[NewEvent, ...]


def _blob(container: str, name: str, size: int) -> BlobRef:
    return BlobRef(
        container=container,  # type: ignore[arg-type]
        name=name,
        size=size,
        sha256=uuid4().hex + uuid4().hex,
        content_type="image/png",
    )


def _lifecycle(execution_id: UUID, subject: str) -> list[NewEvent]:
    submitted = Submitted(
        execution_id=execution_id,
        tool="image-rotate",
        category="image",
        tool_version="1",
        mode="async",
        params={"angle": 90},
        owner="7",
    )
    uploaded = Uploaded(blob=_blob("uploads", f"{execution_id}/input.png", 48_213))
    processing = Processing(
        attempt=1, worker_id="w1", deadline=datetime.now(UTC) + timedelta(minutes=5)
    )
    completed = Completed(
        output=_blob("processed", f"{execution_id}/output.png", 51_877), duration_ms=12
    )
    return [new_event(p, subject=subject) for p in (submitted, uploaded, processing, completed)]


def build_execution() -> Execution:
    execution_id = uuid4()
    subject = execution_subject("image", "image-rotate", execution_id)
    events = tuple(_lifecycle(execution_id, subject))
    return Execution(execution_id, execution_stream(execution_id), events)


def build_executions(count: int) -> list[Execution]:
    return [build_execution() for _ in range(count)]


class LongExecutions:
    """Builds 100-event executions; the 96 Progress payloads are validated once and reused.

    Each copy gets its own event id and the execution's subject, so every event stays distinct (the
    store is idempotent by event id) while building 200,000 of them takes about a second.
    """

    def __init__(self) -> None:
        self._progress = [
            new_event(Progress(percent=round(100 * (i + 1) / (_PROGRESS_STEPS + 1), 2)))
            for i in range(_PROGRESS_STEPS)
        ]

    def build(self) -> Execution:
        execution_id = uuid4()
        subject = execution_subject("image", "image-rotate", execution_id)
        submitted, uploaded, processing, completed = _lifecycle(execution_id, subject)
        # replace() keeps new_event's validation mark: the payload is the same validated object.
        progress = [replace(p, id=uuid4(), subject=subject) for p in self._progress]
        events = (submitted, uploaded, processing, *progress, completed)
        return Execution(execution_id, execution_stream(execution_id), events)

    def build_many(self, count: int) -> list[Execution]:
        return [self.build() for _ in range(count)]


def new_event_cost_us(executions: int = 500) -> float:
    """Microseconds per event that ``new_event`` (pydantic validation + JSON) costs the caller."""
    started = time.perf_counter()
    build_executions(executions)
    return (time.perf_counter() - started) / (executions * EXECUTION_EVENTS) * 1e6
