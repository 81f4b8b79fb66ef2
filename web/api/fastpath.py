"""The API's hottest reads, answered before Django: an execution's status
(``GET /api/v1/executions/<id>/``) and the event feed (``GET /api/v1/events/``) with a token.

Clients poll an execution's status and the feed, and Django and DRF spend far more on them than
the answer itself. This ASGI layer answers those requests only when it can answer exactly as the
view would: a token this process authenticated lately (``web.api.auth``), the user's rate limit
counted the same way, a status row of that user's shown by the same ``executions.represent``, or
the feed read by the same ``web.api.feed.page`` and rendered by the same renderer. Everything else
goes on to Django untouched. Tests compare the answers header by header.

The feed's reads that the edge makes for woken long polls (``web.edge``: the ``repoll`` header,
already counted) are shared: the waiters a new event wakes together ask the same question, and
one read answers them all.

Answering reads the database (and the rate limit's cache), so it runs on a small pool of threads
of its own, never on the event loop: a status table locked for seconds holds these threads and
the polls that wait on them, not every other request of the process. A database that does not
answer within its timeouts (``events.connections``) gets a 503 problem here at once, rather than
a second wait in Django.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import orjson
from csp.utils import build_policy
from django.conf import settings

from events.connections import unavailable as db_unavailable
from projections import status as status_model
from services.problems import CONTENT_TYPE, document
from web.api import feed
from web.api.auth import remembered_user, token_key
from web.api.problems import (
    DATABASE_UNAVAILABLE,
    RETRY_UNAVAILABLE_SECONDS,
    UNAVAILABLE_DETAIL,
)
from web.api.serializers import FeedQuerySerializer
from web.api.throttling import user_allowed
from web.edge import FEED, OWNER_HEADER, REPOLL_HEADER, REPOLL_TOKEN, SEES_HEADER
from web.executions import owner_of, represent
from web.parts import parts

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]
Answer = tuple[bytes, list[tuple[bytes, bytes]]]  # a 200's body and headers (no length yet)

PATH = re.compile(
    r"^/api/v1/executions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$"
)
# What Django and DRF add to this view's answer (checked against them by the tests): these, the
# Content-Security-Policy of the settings, and HSTS on a request that came over HTTPS.
HEADERS = [
    (b"content-type", b"application/json"),
    (b"allow", b"GET, DELETE, HEAD, OPTIONS"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_policy = build_policy()
if _policy:
    HEADERS.append((b"content-security-policy", _policy.encode()))
FEED_QUERY = frozenset({"after", "limit", "wait"})
FEED_HEADERS = [
    (name, b"GET, HEAD, OPTIONS" if name == b"allow" else value) for name, value in HEADERS
]
# Each thread keeps its own read-model connection (``Parts.read_models``). Few: the answer takes
# well under a millisecond of a thread when the database is well, and when it is not, polls queue
# for these threads instead of taking the ones that serve everything else.
THREADS = 4
_threads = ThreadPoolExecutor(THREADS, thread_name_prefix="fast-status")


def _token(scope: Scope) -> str | None:
    """The token of a request whose only credential is an Authorization header."""
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if token is not None:
                return None
            token = token_key(value)
            if token is None:
                return None
        elif name == b"cookie":
            return None  # a browser: session auth, CSRF, Vary: Cookie… Django's to answer
    return token


def _secure(scope: Scope) -> bool:
    """Did the request come over HTTPS, as Django's ``request.is_secure()`` sees it?"""
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name = proxy[0].removeprefix("HTTP_").lower().replace("_", "-").encode()
        value = next((v for k, v in scope["headers"] if k == name), None)
        if value is not None:
            return value.split(b",", 1)[0].strip().decode("latin-1") == proxy[1]
    return scope.get("scheme") == "https"


def _security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Django's SecurityMiddleware's HSTS header, on a request that came over HTTPS."""
    seconds = settings.SECURE_HSTS_SECONDS
    if not seconds or not _secure(scope):
        return []
    value = f"max-age={seconds}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return [(b"strict-transport-security", value.encode())]


def _poll(scope: Scope) -> tuple[str, Any] | None:
    """(execution id, user) of what may be a remembered token's status poll, else None.

    No I/O: it runs on the event loop, for every request."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
        return None
    match = PATH.match(scope["path"])
    if match is None:
        return None
    if settings.SECURE_SSL_REDIRECT and not _secure(scope):
        return None  # Django redirects it to HTTPS
    key = _token(scope)
    user = remembered_user(key) if key else None
    return None if user is None else (match.group(1), user)


def _answer(execution_id: str, user: Any) -> bytes | None:
    row = status_model.get(parts().read_models(), execution_id)
    if row is None or row.owner != owner_of(user):
        return None
    if not user_allowed(user):
        return None  # Django counts it again and answers 429 with its problem
    return orjson.dumps(represent(row))


def answer(scope: Scope) -> bytes | None:
    """The JSON body Django would send with 200, or None when Django must answer.

    It reads the database and the rate limit's cache: call it off the event loop."""
    poll = _poll(scope)
    return None if poll is None else _answer(*poll)


def _unavailable(headers: list[tuple[bytes, bytes]]) -> Answer:
    """503 problem+json: what Django's view would have met too, said without waiting again."""
    problem = document(
        503, DATABASE_UNAVAILABLE, UNAVAILABLE_DETAIL, retry_after=RETRY_UNAVAILABLE_SECONDS
    )
    body = orjson.dumps(problem)
    shown = [(b"content-type", CONTENT_TYPE.encode())]
    shown += [header for header in headers if header[0] != b"content-type"]
    return body, [*shown, (b"retry-after", str(RETRY_UNAVAILABLE_SECONDS).encode())]


def _feed_poll(scope: Scope) -> tuple[Any, int, int, bool] | None:
    """(user, after, limit, is the edge's repoll) of a remembered token's feed read that needs
    no waiting, else None (Django answers: a bad query, a wait no edge took, a cookie…).

    No I/O: it runs on the event loop, for every request."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != FEED:
        return None
    if settings.SECURE_SSL_REDIRECT and not _secure(scope):
        return None
    key = _token(scope)
    user = remembered_user(key) if key else None
    if user is None:
        return None
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    names = [name for name, _ in query]
    if len(set(names)) != len(names) or not FEED_QUERY.issuperset(names):
        return None  # a repeated or another parameter: Django says what it makes of it
    valid = FeedQuerySerializer(data=dict(query))
    if not valid.is_valid() or valid.validated_data["wait"]:
        return None  # Django's 400 problem; or a wait no edge took (no watcher): the view waits
    repoll = REPOLL_HEADER.encode()
    token = next((v for k, v in scope["headers"] if k == repoll), None)
    after, limit = valid.validated_data["after"], valid.validated_data["limit"]
    return user, after, limit, token == REPOLL_TOKEN.encode()


def _feed_answer(user: Any, after: int, limit: int) -> Answer | None:
    """A first read: counted by the user's rate limit (None past it: Django's 429)."""
    if not user_allowed(user):
        return None
    return _feed_read(owner_of(user), user.is_staff, after, limit)


def _feed_read(owner: str, staff: bool, after: int, limit: int) -> Answer:
    read = feed.page(after, limit, None if staff else owner)
    body = feed.render(read.events, read.next_after, read.head)
    sees = b"all" if staff else b"own"
    return body, [
        *FEED_HEADERS,
        (OWNER_HEADER.encode(), owner.encode()),
        (SEES_HEADER.encode(), sees),
    ]


class _Shared:
    """One read for the woken long polls that ask the same question at once (on the loop)."""

    def __init__(self) -> None:
        self._reading: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    async def read(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        reading = self._reading.get(key)
        if reading is None:
            loop = asyncio.get_running_loop()
            reading = loop.run_in_executor(_threads, compute)
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)


_shared = _Shared()


async def _fast(scope: Scope) -> Answer | None:
    """The answer's body and headers, when this layer can give the view's answer."""
    loop = asyncio.get_running_loop()
    poll = _poll(scope)
    if poll is not None:
        body = await loop.run_in_executor(_threads, _answer, *poll)
        return None if body is None else (body, HEADERS)
    feed_poll = _feed_poll(scope)
    if feed_poll is None:
        return None
    user, after, limit, repoll = feed_poll
    if not repoll:
        return await loop.run_in_executor(_threads, _feed_answer, user, after, limit)
    # The edge's rerun of a woken long poll: counted on its first run; the waiters one event
    # woke ask the same question at once, and share the read.
    key = (owner_of(user), user.is_staff, after, limit)
    return await _shared.read(key, lambda: _feed_read(*key))


def with_fast_status(application: ASGIApp) -> ASGIApp:
    async def app(scope: Scope, receive: Callable[..., Awaitable[Any]], send: Any) -> None:
        answered = None
        status = 200
        try:
            answered = await _fast(scope)
        except Exception as exc:
            if not db_unavailable(exc):  # a bug: never worse than the slow path, it answers
                log.exception("fast path failed; Django answers")
            else:
                log.warning("fast path: the database did not answer (%s)", exc)
                status = 503
                answered = _unavailable(FEED_HEADERS if scope["path"] == FEED else HEADERS)
        if answered is None:
            await application(scope, receive, send)
            return
        body, headers = answered
        length = (b"content-length", str(len(body)).encode())
        headers = [*headers, *_security_headers(scope), length]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
