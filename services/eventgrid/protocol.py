"""Event Grid's push protocol, spoken the same way by every end of it in this project.

The emulator pushes with it, the local Functions host's HTTP trigger and the web receiver answer
it. Event Grid delivers either schema: the Event Grid schema (``eventType``, ``eventTime``,
``dataVersion``) or CloudEvents 1.0 (``type``, ``time``, ``specversion``). A subscriber proves it
wants the events before the first delivery, with one handshake per schema:

- **Event Grid schema**: a ``Microsoft.EventGrid.SubscriptionValidationEvent`` arrives with
  ``aeg-event-type: SubscriptionValidation``; the answer is ``{"validationResponse": code}``.
- **CloudEvents** (the web-hook abuse protection of CloudEvents 1.0): an ``OPTIONS`` request with
  ``WebHook-Request-Origin``; the answer repeats it in ``WebHook-Allowed-Origin``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

import orjson

AEG_EVENT_TYPE = "aeg-event-type"
AEG_DELIVERY_COUNT = "aeg-delivery-count"
AEG_SUBSCRIPTION_NAME = "aeg-subscription-name"
SUBSCRIPTION_VALIDATION = "SubscriptionValidation"
NOTIFICATION = "Notification"
VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
CLOUDEVENT = "application/cloudevents+json"
REQUEST_ORIGIN = "WebHook-Request-Origin"
ALLOWED_ORIGIN = "WebHook-Allowed-Origin"
ALLOWED_RATE = "WebHook-Allowed-Rate"
MAX_BATCH_BYTES = 1024 * 1024  # Event Grid refuses a publish (and an event) over 1 MB

CLOUDEVENTS = "CloudEventSchemaV1_0"
EVENTGRID = "EventGridSchema"
# Event Grid's wait before each retry of a push (seconds), the last repeated.
RETRY_SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)


class MalformedEvents(ValueError):
    """A body that is not a batch of events in either schema."""

    code = "malformed_events"


class TooLarge(ValueError):
    """A body over Event Grid's 1 MB: not a publish, not a delivery."""

    code = "payload_too_large"


async def read_body(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    headers: Mapping[str, str],
    limit: int = MAX_BATCH_BYTES,
) -> bytes:
    """An ASGI request's body, refused (``TooLarge``) as soon as it is known to pass ``limit``:
    by its Content-Length, else while reading, so no more than ``limit`` bytes are ever held.
    ``headers`` are lower-case."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"a batch is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedEvents("the client went away before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"a batch is at most {limit} bytes")  # the server drops the rest
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """One event of a delivery, whichever schema it came in."""

    id: str
    type: str
    subject: str
    time: datetime | None
    data: Any
    data_version: str
    source: str  # CloudEvents ``source``, or the Event Grid ``topic``
    schema: str  # CLOUDEVENTS or EVENTGRID
    raw: Mapping[str, Any]


def parse_events(body: bytes) -> list[DeliveredEvent]:
    """The events of a delivery body: a JSON array, or one structured CloudEvent."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvents(f"the body is not JSON: {exc}") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise MalformedEvents("the batch holds no events")
    return [parse_event(item, index) for index, item in enumerate(items)]


def parse_event(item: Any, index: int = 0) -> DeliveredEvent:
    if not isinstance(item, dict):
        raise MalformedEvents(f"event {index} is not a JSON object")
    if "specversion" in item:
        _require(item, index, ("id", "source", "type"), str)
        if item["specversion"] != "1.0":
            raise MalformedEvents(f"event {index}: specversion must be 1.0")
        return DeliveredEvent(
            id=item["id"],
            type=item["type"],
            subject=_optional_str(item, "subject", index),
            time=_time(item.get("time"), index),
            data=item.get("data"),
            data_version=str(item.get("dataschemaversion") or item.get("dataschema") or ""),
            source=item["source"],
            schema=CLOUDEVENTS,
            raw=item,
        )
    _require(item, index, ("id", "eventType", "eventTime", "dataVersion"), str)
    # Required, but may be empty: Event Grid's own validation event has "subject": "".
    if not isinstance(item.get("subject"), str):
        raise MalformedEvents(f"event {index}: subject is required and must be a string")
    if "data" not in item:
        raise MalformedEvents(f"event {index}: data is required")
    return DeliveredEvent(
        id=item["id"],
        type=item["eventType"],
        subject=item["subject"],
        time=_time(item["eventTime"], index),
        data=item["data"],
        data_version=item["dataVersion"],
        source=_optional_str(item, "topic", index),
        schema=EVENTGRID,
        raw=item,
    )


def validation_code(events: list[DeliveredEvent]) -> str | None:
    """The code of an Event Grid schema subscription validation, if this is one."""
    for event in events:
        if event.type == VALIDATION_EVENT_TYPE and isinstance(event.data, dict):
            code = event.data.get("validationCode")
            if isinstance(code, str) and code:
                return code
            raise MalformedEvents("the validation event carries no validationCode")
    return None


def validation_response(code: str) -> dict[str, str]:
    return {"validationResponse": code}


def abuse_protection_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The answer to a CloudEvents OPTIONS handshake, or None when it names no origin."""
    origin = next((v for k, v in headers.items() if k.lower() == REQUEST_ORIGIN.lower()), "")
    if not origin:
        return None
    return {ALLOWED_ORIGIN: origin, ALLOWED_RATE: "*", "Allow": "POST, OPTIONS"}


def _require(item: dict, index: int, names: tuple[str, ...], kind: type) -> None:
    for name in names:
        value = item.get(name)
        if not isinstance(value, kind) or not value:
            raise MalformedEvents(f"event {index}: {name} is required and must be a string")


def _optional_str(item: dict, name: str, index: int) -> str:
    value = item.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedEvents(f"event {index}: {name} must be a string")
    return value


def _time(value: Any, index: int) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEvents(f"event {index}: time must be an RFC 3339 string")
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    # Event Grid writes seven fractional digits; Python reads six.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}" if digits else head + rest
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvents(f"event {index}: time {value!r} is not RFC 3339") from None


def retry_delay(attempts: int, scale: float = 1.0) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (capped at 12 h, then scaled)."""
    return RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1] * scale


def outcome(status: int) -> str:
    """Event Grid's name for an answer: .NET's HttpStatusCode names, 408 as ``TimedOut``."""
    if status == 408:
        return "TimedOut"
    try:
        return "".join(word.capitalize() for word in HTTPStatus(status).name.split("_"))
    except ValueError:
        return str(status)
