"""The local host's Event Grid HTTP trigger answers as the Azure Functions host does."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import azure.functions as func
import httpx
import orjson
import pytest

from handlers.bindings import read_bindings
from handlers.eventgrid_trigger import PATH, STATUS_PATH, EventGridTrigger
from services.eventgrid import protocol

SUBJECT = "/tools/image/image-rotate/executions/0b7b8ad2-9b8e-4e59-a0f1-0e8f8d0a6a0e"


class Calls:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.fail_ids: set[str] = set()
        self.lock = threading.Lock()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def trigger(calls: Calls) -> EventGridTrigger:
    app = func.FunctionApp()

    @app.function_name("image")
    @app.event_grid_trigger(arg_name="event", subject_begins_with="/tools/image/")
    def image(event: func.CloudEvent) -> None:
        with calls.lock:
            calls.events.append(event)
        if event.id in calls.fail_ids:
            raise RuntimeError("the tool crashed")

    subscriptions, _ = read_bindings(app)
    return EventGridTrigger(subscriptions, workers=2)


def post(trigger: EventGridTrigger, body: bytes, *, method: str = "POST", **kwargs: Any):
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=trigger)
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
            return await client.request(method, kwargs.pop("url", PATH), content=body, **kwargs)

    return asyncio.run(go())


def cloudevent(event_id: str = "e1", **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/magictoolbox/test",
        "type": "MagicToolbox.Execution.Uploaded",
        "subject": SUBJECT,
        "time": "2026-11-28T10:00:00.1234567Z",
        "data": {"blob": "x"},
        "dataschemaversion": 1,
        **extra,
    }


IMAGE = {"functionName": "image"}


def test_a_cloudevents_batch_runs_the_function_once_per_event(
    trigger: EventGridTrigger, calls: Calls
) -> None:
    batch = [cloudevent("e1"), cloudevent("e2")]
    answer = post(trigger, orjson.dumps(batch), params=IMAGE)

    assert answer.status_code == 200
    assert [e.id for e in calls.events] == ["e1", "e2"]
    first = calls.events[0]  # what the Python worker passes for a CloudEvent
    assert isinstance(first, func.CloudEvent)
    assert first.type == "MagicToolbox.Execution.Uploaded"
    assert first.subject == SUBJECT
    assert first.get_json() == {"blob": "x"}
    assert first.source == "/magictoolbox/test"
    assert first.extension_attrs == {"dataschemaversion": 1}


def test_an_event_grid_schema_delivery_runs_it_too(trigger: EventGridTrigger, calls: Calls) -> None:
    event = {
        "id": "g1",
        "eventType": "MagicToolbox.Execution.Submitted",
        "subject": SUBJECT,
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {"tool": "image-rotate"},
        "dataVersion": "1",
    }
    assert post(trigger, orjson.dumps([event]), params=IMAGE).status_code == 200
    assert isinstance(calls.events[0], func.EventGridEvent)
    assert calls.events[0].event_type == "MagicToolbox.Execution.Submitted"
    assert calls.events[0].data_version == "1"
    assert calls.events[0].get_json() == {"tool": "image-rotate"}


def test_a_function_that_raises_answers_500_so_event_grid_retries(
    trigger: EventGridTrigger, calls: Calls
) -> None:
    calls.fail_ids = {"bad"}
    answer = post(trigger, orjson.dumps([cloudevent("bad")]), params=IMAGE)

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "function_failed"
    assert "the tool crashed" in answer.json()["detail"]
    assert trigger.failures == 1


def test_both_handshakes(trigger: EventGridTrigger, calls: Calls) -> None:
    validation = {
        "id": "v",
        "eventType": protocol.VALIDATION_EVENT_TYPE,
        "subject": "",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {"validationCode": "abc-123"},
        "dataVersion": "2",
    }
    answer = post(
        trigger,
        orjson.dumps([validation]),
        params=IMAGE,
        headers={protocol.AEG_EVENT_TYPE: protocol.SUBSCRIPTION_VALIDATION},
    )
    assert answer.json() == {"validationResponse": "abc-123"}

    options = post(
        trigger,
        b"",
        method="OPTIONS",
        params=IMAGE,
        headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
    )
    assert options.status_code == 200
    assert options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert calls.events == []  # a handshake runs nothing


@pytest.mark.parametrize(
    ("params", "body", "status", "code"),
    [
        ({"functionName": "video"}, orjson.dumps([cloudevent()]), 404, "unknown_function"),
        (IMAGE, b"not json", 400, "malformed_events"),
        (IMAGE, orjson.dumps([{"specversion": "1.0", "id": "x"}]), 400, "malformed_events"),
        (IMAGE, b"[" + b" " * protocol.MAX_BATCH_BYTES + b"]", 413, "payload_too_large"),
    ],
)
def test_bad_deliveries_get_a_problem_and_run_nothing(
    trigger: EventGridTrigger, calls: Calls, params: dict, body: bytes, status: int, code: str
) -> None:
    answer = post(trigger, body, params=params)
    assert answer.status_code == status
    assert answer.json()["code"] == code
    assert calls.events == []


def test_the_host_status_endpoint_says_running(trigger: EventGridTrigger) -> None:
    answer = post(trigger, b"", method="GET", url=STATUS_PATH)
    assert answer.json() == {"state": "Running"}
