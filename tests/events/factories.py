"""Builders of realistic execution events for the event store tests and benchmarks."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from events.catalog import BlobRef, Completed, Processing, Progress, Submitted, Uploaded
from events.envelope import NewEvent, execution_stream, execution_subject, new_event


def blob(container: str = "uploads", content: bytes = b"png bytes") -> BlobRef:
    return BlobRef(
        container=container,  # type: ignore[arg-type]
        name=f"{uuid.uuid4()}/photo.png",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content_type="image/png",
    )


def hash_text_submitted(
    text: str, owner: str = "7", execution_id: uuid.UUID | None = None
) -> Submitted:
    """The Submitted payload of a sync ``hash-text`` run of ``text``."""
    return Submitted(
        execution_id=execution_id or uuid.uuid4(),
        tool="hash-text",
        category="encoders",
        tool_version="1",
        mode="sync",
        params={"text": text},
        owner=owner,
    )


def execution_events(execution_id: uuid.UUID | None = None) -> tuple[str, list[NewEvent]]:
    """The four events of a typical async run: Submitted, Uploaded, Processing, Completed."""
    eid = execution_id or uuid.uuid4()
    subject = execution_subject("image", "image-rotate", eid)
    meta = {"correlationid": str(eid), "traceparent": f"00-{uuid.uuid4().hex}-{'1' * 16}-01"}
    payloads = [
        Submitted(
            execution_id=eid,
            tool="image-rotate",
            category="image",
            tool_version="1",
            mode="async",
            params={"angle": 90},
            owner="7",
        ),
        Uploaded(blob=blob()),
        Processing(
            attempt=1, worker_id="worker-1", deadline=datetime.now(UTC) + timedelta(minutes=5)
        ),
        Completed(output=blob("processed"), duration_ms=42),
    ]
    return execution_stream(eid), [new_event(p, subject=subject, metadata=meta) for p in payloads]


def progress(n: int, subject: str = "") -> list[NewEvent]:
    return [
        new_event(Progress(percent=i % 101, message=f"step {i}"), subject=subject) for i in range(n)
    ]
