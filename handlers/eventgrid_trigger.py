"""The Functions host's Event Grid HTTP trigger: ``/runtime/webhooks/EventGrid?functionName=``.

Event Grid pushes to an Azure Function at this URL; the local host answers it the same way, so the
emulator pushes to our functions as Event Grid pushes to Azure: both handshakes; a notification
runs the named function once per event (200, or 500 if one raised, so Event Grid retries and
dead-letters; the functions act on the stream, so a retry is harmless); 404, 400 and 413 as
problem+json. ``GET /admin/host/status`` answers ``{"state": "Running"}`` as the real host does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import azure.functions as func
import orjson
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from handlers.bindings import EventSubscription
from services import problems
from services.eventgrid import protocol

log = logging.getLogger(__name__)

PATH = "/runtime/webhooks/EventGrid"
STATUS_PATH = "/admin/host/status"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def function_event(event: protocol.DeliveredEvent) -> func.EventGridEvent | func.CloudEvent:
    """The argument the Python worker passes an Event Grid trigger for this event, made by the
    worker's own converter: a ``func.CloudEvent`` for CloudEvents, else a ``func.EventGridEvent``.
    """
    datum = Datum(type="json", value=orjson.dumps(dict(event.raw)).decode())
    return EventGridEventInConverter.decode(datum, trigger_metadata=None)


def event_subscriptions(
    subscriptions: list[EventSubscription], base_url: str, **options: Any
) -> list[dict[str, Any]]:
    """Event Grid subscriptions (the emulator's config shape, ARM's names) that push each
    function's events to the host at ``base_url``, filtered as its trigger binding declares."""
    return [
        {
            "name": s.name,
            "endpoint": f"{base_url.rstrip('/')}{PATH}?functionName={s.name}",
            "eventDeliverySchema": protocol.CLOUDEVENTS,
            "filter": {
                "includedEventTypes": list(s.included_event_types),
                "subjectBeginsWith": s.subject_begins_with,
                "subjectEndsWith": s.subject_ends_with,
            },
            "maxEventsPerBatch": 1,
            **options,
        }
        for s in subscriptions
    ]


class EventGridTrigger:
    """An ASGI app that invokes the app's Event Grid-triggered functions by name."""

    def __init__(self, subscriptions: list[EventSubscription], *, workers: int = 8) -> None:
        self.functions = {s.name: s for s in subscriptions}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trigger")
        self.invocations = 0
        self.failures = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == STATUS_PATH and method == "GET":
            await _json(send, 200, {"state": "Running"})
            return
        if path.rstrip("/") != PATH:
            await _problem(send, 404, "not_found", f"nothing at {path}")
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        name = (query.get("functionName") or [""])[0]
        subscription = self.functions.get(name)
        if subscription is None:
            await _problem(send, 404, "unknown_function", f"the app has no function {name!r}")
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if method == "OPTIONS":
            answer = protocol.abuse_protection_headers(headers)
            if answer is None:
                await _problem(send, 400, "missing_origin", "WebHook-Request-Origin is missing")
                return
            await _respond(send, 200, b"", list(answer.items()))
            return
        if method != "POST":
            await _problem(send, 405, "method_not_allowed", f"{method} is not allowed here")
            return
        try:
            body = await protocol.read_body(receive, headers)
            events = protocol.parse_events(body)
            code = protocol.validation_code(events)
        except protocol.TooLarge as exc:
            await _problem(send, 413, exc.code, str(exc))
            return
        except protocol.MalformedEvents as exc:
            await _problem(send, 400, exc.code, str(exc))
            return
        kind = headers.get(protocol.AEG_EVENT_TYPE, protocol.NOTIFICATION)
        if code is not None or kind == protocol.SUBSCRIPTION_VALIDATION:
            if code is None:
                await _problem(send, 400, "malformed_events", "no validation code in the body")
                return
            await _json(send, 200, protocol.validation_response(code))
            return
        error = await self._invoke(subscription, events)
        if error is not None:
            await _problem(send, 500, "function_failed", error)
            return
        await _respond(send, 200, b"", [])

    async def _invoke(
        self, subscription: EventSubscription, events: list[protocol.DeliveredEvent]
    ) -> str | None:
        loop = asyncio.get_running_loop()
        for event in events:

            def call(event: protocol.DeliveredEvent = event) -> None:
                subscription.function(**{subscription.arg_name: function_event(event)})

            self.invocations += 1
            try:
                await loop.run_in_executor(self._pool, call)
            except Exception as exc:
                self.failures += 1
                log.warning("function %s failed on %s: %s", subscription.name, event.id, exc)
                return f"{subscription.name} failed on {event.id}: {type(exc).__name__}: {exc}"
        return None


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, doc: Any) -> None:
    await _respond(send, status, orjson.dumps(doc), [("content-type", "application/json")])


async def _problem(send: Send, status: int, code: str, detail: str) -> None:
    doc = problems.document(status, code, detail)
    await _respond(send, status, orjson.dumps(doc), [("content-type", problems.CONTENT_TYPE)])
