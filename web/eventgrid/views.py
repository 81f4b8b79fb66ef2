"""``/eventgrid/events``: where Event Grid pushes the project's events so this process catches up
at once instead of at its next poll.

The receiver keeps nothing from a delivery. It checks who sent it (``web.eventgrid.auth``),
answers the two subscription handshakes, parses the batch only to refuse garbage and to see
whether any event is ours, then wakes this process's readers (``web.runtime.wake``), which read
the event store itself. So a duplicate, late or out-of-order delivery is harmless and the store
stays the only truth. A plain Django view rather than DRF: Event Grid is not a user, and the
API's authentication and throttles are for people and their programs.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from services.eventgrid import protocol
from web import runtime
from web.api import problems
from web.eventgrid import auth

log = logging.getLogger(__name__)

OURS = "MagicToolbox."  # the type prefix of our events; the topic may carry others
ALLOW = "POST, OPTIONS"
READ_CHUNK = 64 * 1024


class TooLarge(Exception):
    """A body over Event Grid's own limit: not a delivery."""


@csrf_exempt
def receive(request: HttpRequest) -> HttpResponse:
    """Every method is authenticated first, handshakes included: see ``web.eventgrid.auth``."""
    refusal = auth.check(request)
    if refusal is not None:
        return problem(refusal.status, refusal.code, refusal.detail, refusal.headers)
    if request.method == "OPTIONS":
        return handshake(request)
    if request.method != "POST":
        return problem(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here: Event Grid delivers with POST",
            {"Allow": ALLOW},
        )
    try:
        delivered = protocol.parse_events(read_body(request))
        code = protocol.validation_code(delivered)
    except TooLarge:
        return problem(
            413,
            "payload_too_large",
            f"a delivery is at most {protocol.MAX_BATCH_BYTES} bytes",
        )
    except protocol.MalformedEvents as exc:
        return problem(400, protocol.MalformedEvents.code, str(exc))
    if code is not None:
        log.info("Event Grid subscription validated (%s)", _subscription(request))
        return JsonResponse(protocol.validation_response(code))
    if request.headers.get(protocol.AEG_EVENT_TYPE) == protocol.SUBSCRIPTION_VALIDATION:
        return problem(
            400,
            protocol.MalformedEvents.code,
            f"a SubscriptionValidation delivery carries no {protocol.VALIDATION_EVENT_TYPE}",
        )
    ours = sum(1 for event in delivered if event.type.startswith(OURS))
    if ours:
        runtime.wake()  # what this nudges reads the store: delivering twice changes nothing
    log.debug(
        "Event Grid delivered %d events, %d ours (%s)", len(delivered), ours, _subscription(request)
    )
    return JsonResponse({"received": len(delivered), "ours": ours})


def handshake(request: HttpRequest) -> HttpResponse:
    """The CloudEvents abuse-protection handshake: allow the origin that asks (it has our key)."""
    response = HttpResponse(status=200, headers={"Allow": ALLOW})
    for name, value in (protocol.abuse_protection_headers(request.headers) or {}).items():
        response[name] = value
    return response


def read_body(request: HttpRequest) -> bytes:
    """The body, refused as soon as it is known to pass the limit: declared, then as read."""
    limit = protocol.MAX_BATCH_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := request.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    """A problem+json answer in the API's shape (``web.api.problems``)."""
    return JsonResponse(
        problems.body(status, code, detail),
        status=status,
        content_type=problems.CONTENT_TYPE,
        headers=headers,
    )


def _subscription(request: HttpRequest) -> str:
    return request.headers.get(protocol.AEG_SUBSCRIPTION_NAME, "no subscription name")
