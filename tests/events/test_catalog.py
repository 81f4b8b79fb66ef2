"""The catalog and the envelope: validation, upcasting, and the CloudEvents shape of events."""

from __future__ import annotations

import uuid

import orjson
import pytest

from events.catalog import EXECUTION_EVENTS, Failed, Progress, Submitted, catalog
from events.envelope import execution_subject, new_event
from events.errors import EventSchemaError, EventTooLarge, InvalidExtension, UnknownEventType
from events.store import NO_STREAM, EventStore
from tests.events.factories import execution_events


def test_every_event_type_is_named_in_the_execution_namespace() -> None:
    names = sorted(m.event_type() for m in EXECUTION_EVENTS)
    expected = ["Submitted", "Uploaded", "Processing", "Progress", "Completed", "Failed"]
    expected += ["Cancelled", "Retried", "Expired"]
    assert names == sorted(f"MagicToolbox.Execution.{n}" for n in expected)


def test_a_v1_failed_payload_reads_as_the_current_model() -> None:
    loaded = catalog.load(
        Failed.event_type(), 1, {"error": "disk full", "retryable": True, "attempt": 2}
    )
    assert loaded == Failed(code="unknown_error", message="disk full", retryable=True, attempt=2)


def test_a_payload_from_newer_code_or_without_an_upcaster_is_refused() -> None:
    with pytest.raises(EventSchemaError, match="newer than this code"):
        catalog.load(Progress.event_type(), 3, {"percent": 1})
    with pytest.raises(EventSchemaError, match="no upcaster"):
        catalog.load(Progress.event_type(), 0, {"percent": 1})


def test_payloads_from_outside_are_validated_with_a_readable_reason() -> None:
    with pytest.raises(EventSchemaError) as err:
        catalog.validate(Submitted.event_type(), {"tool": "x", "mode": "sideways"})
    assert "mode" in err.value.detail and "execution_id" in err.value.detail
    with pytest.raises(UnknownEventType):
        catalog.validate("MagicToolbox.Execution.Teleported", {})
    with pytest.raises(EventSchemaError):
        catalog.validate(
            Failed.event_type(), {"code": "Not A Code", "message": "", "retryable": 1, "attempt": 1}
        )


def test_an_event_over_one_megabyte_cannot_even_be_built() -> None:
    with pytest.raises(EventTooLarge):
        new_event(Submitted(execution_id=uuid.uuid4(), tool="json-format", category="data",
                            tool_version="1", mode="sync", owner="1",
                            params={"text": "x" * (1024 * 1024)}))  # fmt: skip


def test_an_extension_name_that_is_not_lowercase_alphanumeric_is_refused() -> None:
    with pytest.raises(InvalidExtension) as refused:
        new_event(Progress(percent=1), metadata={"Bad-Key": "x"})
    assert refused.value.code == "invalid_extension" and "Bad-Key" in str(refused.value)


def test_an_extension_value_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidExtension, match="not int"):
        new_event(Progress(percent=1), metadata={"attempts": 3})


def test_a_stored_event_is_a_cloudevent_with_our_extensions(store: EventStore) -> None:
    stream, events = execution_events()
    store.append(stream, events, NO_STREAM)
    recorded = store.read_stream(stream)[2]
    doc = recorded.to_cloudevent()

    assert doc["specversion"] == "1.0"
    assert doc["id"] == str(events[2].id)
    assert doc["type"] == "MagicToolbox.Execution.Processing"
    assert doc["source"] == "/magictoolbox/local"
    execution_id = uuid.UUID(stream.removeprefix("execution-"))
    assert doc["subject"] == execution_subject("image", "image-rotate", execution_id)
    assert doc["time"].endswith("Z")
    assert doc["streamversion"] == 2 and doc["streamposition"] == recorded.position
    assert doc["correlationid"] == str(execution_id)
    assert doc["traceparent"].startswith("00-")
    assert doc["data"]["attempt"] == 1
    assert orjson.loads(orjson.dumps(doc)) == doc  # plain JSON all the way down


def test_each_event_reads_as_one_line_for_people() -> None:
    """The timeline's summaries: the API adds them, the UI shows them as they come."""
    from datetime import UTC, datetime

    from events.catalog import (
        BlobRef,
        Cancelled,
        Completed,
        DeclaredInput,
        Expired,
        Processing,
        Retried,
        Uploaded,
    )

    blob = BlobRef(
        container="uploads",
        name="x/photo.png",
        size=1536,
        sha256="0" * 64,
        content_type="image/png",
    )
    submitted = Submitted(
        execution_id=uuid.UUID(int=1),
        tool="image-rotate",
        category="image",
        tool_version="1",
        mode="async",
        owner="7",
        input=DeclaredInput(filename="photo.png", size=1536, content_type="image/png"),
    )
    lines = [
        submitted.summary(),
        Uploaded(blob=blob).summary(),
        Processing(attempt=2, worker_id="w1", deadline=datetime.now(UTC)).summary(),
        Progress(percent=50.0, message="halfway").summary(),
        Completed(output=blob, duration_ms=12_500).summary(),
        Completed(result="ok", duration_ms=840).summary(),
        Failed(code="timeout", message="too slow", retryable=True, attempt=1).summary(),
        Cancelled(reason="changed my mind").summary(),
        Retried(next_attempt=2).summary(),
        Expired(blobs_removed=[blob]).summary(),
    ]
    assert lines == [
        "image-rotate (async), input photo.png",
        "stored 1.5 KB (image/png)",
        "attempt 2 by w1",
        "50% halfway",
        "a file in 12.5 s",
        "an inline result in 840 ms",
        "timeout: too slow (retryable)",
        "changed my mind",
        "next attempt 2",
        "1 file removed",
    ]
