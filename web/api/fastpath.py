"""The API's hottest read, answered before Django: ``GET /api/v1/executions/<id>/`` with a token.

Clients poll an execution's status, and Django and DRF spend far more on it than the answer
itself. This ASGI layer answers that one request only when it can answer exactly as the view
would: a token this process authenticated lately (``web.api.auth``), the user's rate limit counted
the same way, a status row of that user's, shown by the same ``executions.represent``.
Everything else goes on to Django untouched. A test compares the two answers header by header.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from projections import status as status_model
from web.api.auth import remembered_user
from web.api.throttling import user_allowed
from web.executions import owner_of, represent
from web.parts import parts

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]

PATH = re.compile(
    r"^/api/v1/executions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$"
)
KEYWORDS = (b"Token ", b"Bearer ")
# What Django and DRF add to this view's answer (checked against them by the tests).
HEADERS = [
    (b"content-type", b"application/json"),
    (b"allow", b"GET, DELETE, HEAD, OPTIONS"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def _token(scope: Scope) -> str | None:
    """The token of a request whose only credential is an Authorization header."""
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if token is not None:
                return None
            for keyword in KEYWORDS:
                if value.startswith(keyword) and len(value) > len(keyword):
                    token = value[len(keyword) :].decode("latin-1").strip()
            if token is None:
                return None
        elif name == b"cookie":
            return None  # a browser: session auth, CSRF, Vary: Cookie… Django's to answer
    return token


def answer(scope: Scope) -> bytes | None:
    """The JSON body Django would send with 200, or None when Django must answer."""
    if scope["method"] != "GET" or scope.get("query_string"):
        return None
    match = PATH.match(scope["path"])
    if match is None:
        return None
    key = _token(scope)
    user = remembered_user(key) if key else None
    if user is None:
        return None
    row = status_model.get(parts().read_models(), match.group(1))
    if row is None or row.owner != owner_of(user):
        return None
    if not user_allowed(user):
        return None  # Django counts it again and answers 429 with its problem
    return orjson.dumps(represent(row))


def with_fast_status(application: ASGIApp) -> ASGIApp:
    async def app(scope: Scope, receive: Callable[..., Awaitable[Any]], send: Any) -> None:
        body = None
        if scope["type"] == "http":
            try:
                body = answer(scope)
            except Exception:  # never worse than the slow path: it answers instead
                log.exception("fast status path failed; Django answers")
        if body is None:
            await application(scope, receive, send)
            return
        headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
