"""The receiver inside the application ``make run`` serves (``web.asgi``): small deliveries take
the thread pool, streamed or large ones Django's ASGI handler, and both must answer alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from services.eventgrid import protocol
from tests.web.deployment import Deployment
from tests.web.eventgrid.conftest import BATCH, KEY, URL, dumps, fingerprint
from web.asgi import application

HEADERS = {"X-MagicToolbox-Key": KEY, "Content-Type": BATCH}


def serve(*requests: tuple[str, dict[str, Any]]) -> list[httpx.Response]:
    """Each (method, httpx arguments) through the served ASGI application, in order."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.request(method, URL, **args) for method, args in requests]

    return asyncio.run(run())


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body sent without Content-Length, as a client streaming it would."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_handshakes_and_a_delivery_through_the_served_app(
    receiver: Deployment, cloudevents, woken
) -> None:
    before = fingerprint(receiver.store)
    origin = {protocol.REQUEST_ORIGIN: "eventgrid.azure.net", "X-MagicToolbox-Key": KEY}
    handshake, delivery, again, refused = serve(
        ("OPTIONS", {"headers": origin}),
        ("POST", {"content": dumps(cloudevents), "headers": HEADERS}),
        ("POST", {"content": dumps(cloudevents), "headers": HEADERS}),
        ("POST", {"content": dumps(cloudevents), "headers": {"Content-Type": BATCH}}),
    )
    assert handshake.status_code == 200
    assert handshake.headers[protocol.ALLOWED_ORIGIN] == "eventgrid.azure.net"
    assert delivery.status_code == again.status_code == 200
    assert delivery.json() == {"received": len(cloudevents), "ours": len(cloudevents)}
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "unauthorized"
    assert woken == [1, 1]
    assert fingerprint(receiver.store) == before


def test_a_streamed_body_is_read_and_measured_as_it_comes(
    receiver: Deployment, cloudevents, woken
) -> None:
    big = [{**cloudevents[0], "data": {"pad": "x" * protocol.MAX_BATCH_BYTES}}]
    declared_big = dumps(big)
    streamed, too_big, declared = serve(
        ("POST", {"content": chunks(dumps(cloudevents)), "headers": HEADERS}),
        ("POST", {"content": chunks(declared_big), "headers": HEADERS}),
        ("POST", {"content": declared_big, "headers": HEADERS}),
    )
    assert streamed.status_code == 200, streamed.content
    assert streamed.json() == {"received": len(cloudevents), "ours": len(cloudevents)}
    for answer in (too_big, declared):
        assert answer.status_code == 413
        assert orjson.loads(answer.content)["code"] == "payload_too_large"
    assert woken == [1]
