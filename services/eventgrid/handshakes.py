"""The two proofs an endpoint gives before Event Grid delivers to it, as Event Grid asks them.

- Event Grid schema: a POST of one ``Microsoft.EventGrid.SubscriptionValidationEvent`` with
  ``aeg-event-type: SubscriptionValidation``; the endpoint answers 200 with
  ``{"validationResponse": <validationCode>}`` (or later opens ``validationUrl``, which the
  emulator serves too).
- CloudEvents: an ``OPTIONS`` with ``WebHook-Request-Origin: eventgrid.azure.net``; the endpoint
  answers 200 with ``WebHook-Allowed-Origin`` set to that origin or ``*``.

Each function returns None when the endpoint passed, else why not, in words for the status page.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import orjson

from services.eventgrid import protocol

ORIGIN = "eventgrid.azure.net"


def event_time(at: datetime | None = None) -> str:
    """Event Grid's timestamp: UTC, seven fractional digits, ``Z``."""
    return f"{(at or datetime.now(UTC)).astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}0Z"


async def validation_handshake(
    client: httpx.AsyncClient,
    endpoint: str,
    *,
    topic_id: str,
    code: str,
    validation_url: str,
    headers: Mapping[str, str],
    timeout: float,
) -> str | None:
    event = {
        "id": str(uuid.uuid4()),
        "topic": topic_id,
        "subject": "",
        "data": {"validationCode": code, "validationUrl": validation_url},
        "eventType": protocol.VALIDATION_EVENT_TYPE,
        "eventTime": event_time(),
        "metadataVersion": "1",
        "dataVersion": "2",
    }
    request_headers = {
        **headers,
        "Content-Type": "application/json; charset=utf-8",
        protocol.AEG_EVENT_TYPE: protocol.SUBSCRIPTION_VALIDATION,
        "aeg-metadata-version": "1",
        "aeg-data-version": "2",
    }
    response = await _send(
        client, "POST", endpoint, request_headers, orjson.dumps([event]), timeout
    )
    if isinstance(response, str):
        return response
    if response.status_code != 200:
        return f"the validation answer was {response.status_code}, not 200"
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return "the validation answer is not JSON"
    if not isinstance(answer, dict):
        return "the validation answer is not a JSON object"
    given = next((v for k, v in answer.items() if k.lower() == "validationresponse"), None)
    if given != code:
        return "the validation answer does not carry the validationCode as validationResponse"
    return None


async def abuse_protection_handshake(
    client: httpx.AsyncClient, endpoint: str, *, headers: Mapping[str, str], timeout: float
) -> str | None:
    request_headers = {**headers, protocol.REQUEST_ORIGIN: ORIGIN}
    response = await _send(client, "OPTIONS", endpoint, request_headers, None, timeout)
    if isinstance(response, str):
        return response
    if response.status_code != 200:
        return f"the OPTIONS answer was {response.status_code}, not 200"
    allowed = [o.strip() for o in response.headers.get(protocol.ALLOWED_ORIGIN, "").split(",")]
    if ORIGIN not in allowed and "*" not in allowed:
        return f"the OPTIONS answer does not allow origin {ORIGIN} in {protocol.ALLOWED_ORIGIN}"
    return None


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
) -> httpx.Response | str:
    try:
        async with asyncio.timeout(timeout):
            return await client.request(method, url, headers=headers, content=body)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
