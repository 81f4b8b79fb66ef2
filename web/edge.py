"""The ASGI edge: what every request meets before Django reads a byte of its body.

* **Body limits, before reading.** Each route has a limit (``body_limit``): the Event Grid
  receiver 1 MiB (Event Grid's own cap), an upload route its tool's limit (at most
  ``GLOBAL_MAX_UPLOAD``) plus the form around it, every other route ``MAX_BODY_BYTES``. A
  ``Content-Length`` over it is answered 413 at once; a chunked body is counted as it streams and
  cut off (413) at the limit.
* **Authentication before an upload is read.** An upload route's body beyond ``MAX_BODY_BYTES``
  (or a chunked one) is read only for a request with a valid token or a signed-in session;
  anyone else gets 401 without a byte read.
* **The API's uploads are streamed** (``web.uploads``): no spool file; the blob store's write is
  the only one.
* **Long polls wait on the loop** (``web.waiting``), not on a thread.

The edge's own headers (``OURS``) from clients are dropped here, so only this layer sets them.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from services.problems import CONTENT_TYPE, document
from services.tools.base import GLOBAL_MAX_UPLOAD
from web.uploads import STREAMED
from web.waiting import EVERYONE, FeedWatch

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]

EVENTGRID_LIMIT = 1024 * 1024  # Event Grid delivers batches of at most 1 MB
UPLOAD_SLACK = 1024 * 1024  # multipart framing and the other fields around the file
API_SUBMIT = "/api/v1/executions/"
UI_TOOL = re.compile(r"^/tools/([-a-zA-Z0-9_]+)/$")
FEED = "/api/v1/events/"
INTERNAL = b"x-magictoolbox-"
REPOLL_HEADER = "x-magictoolbox-repoll"  # a long poll's own second run: counted once
OWNER_HEADER = "x-magictoolbox-owner"  # the feed view names whose poll it answered
SEES_HEADER = "x-magictoolbox-sees"  # and whether they see their own events or all ("all")
REPOLL_TOKEN = secrets.token_hex(16)  # per process: a client cannot forge it
OURS = frozenset(h.encode() for h in (REPOLL_HEADER, OWNER_HEADER, SEES_HEADER))

_auth_threads = ThreadPoolExecutor(2, thread_name_prefix="edge-auth")


class Edge:
    """The edge around the web's ASGI application (``web.asgi``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        long_polls_per_user: int,
        tool_limit: Callable[[str], int | None],
        authenticated: Callable[[Scope], bool],
        watch: FeedWatch | None,
        pooled: ASGIApp,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.long_polls_per_user = long_polls_per_user
        self.tool_limit = tool_limit
        self.authenticated = authenticated
        self.watch = watch
        self.pooled = pooled  # the thread-pool path (a2wsgi): where a long poll's reads run

    def body_limit(self, scope: Scope) -> int:
        path = scope["path"]
        if path.startswith("/eventgrid/"):
            return EVENTGRID_LIMIT
        if scope["method"] == "POST":
            if path == API_SUBMIT:
                return GLOBAL_MAX_UPLOAD + UPLOAD_SLACK
            match = UI_TOOL.match(path)
            if match:
                limit = self.tool_limit(match.group(1))
                if limit is not None:
                    return limit + UPLOAD_SLACK
        return self.max_body

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in OURS]
        scope["headers"] = headers
        length_header = next((v for k, v in headers if k == b"content-length"), None)
        chunked = any(k == b"transfer-encoding" and b"chunked" in v.lower() for k, v in headers)
        limit = self.body_limit(scope)
        if length_header is not None and not length_header.isdigit():
            await _problem(send, 400, "invalid_content_length", "Content-Length is not a number")
            return
        length = int(length_header) if length_header is not None else None
        if length is not None and length > limit:
            await _problem(
                send, 413, "payload_too_large", f"this route takes bodies of at most {limit} bytes"
            )
            return
        is_upload = scope["method"] == "POST" and (
            scope["path"] == API_SUBMIT or UI_TOOL.match(scope["path"]) is not None
        )
        big = chunked or (length is not None and length > self.max_body)
        if is_upload and big:
            loop = asyncio.get_running_loop()
            if not await loop.run_in_executor(_auth_threads, self.authenticated, scope):
                await _problem(
                    send,
                    401,
                    "not_authenticated",
                    "sign in (or send your API token) before uploading",
                    headers=[(b"www-authenticate", b"Token")],
                )
                return
            if scope["path"] == API_SUBMIT:
                scope[STREAMED] = True
        if scope["path"] == FEED and scope["method"] == "GET" and self.watch is not None:
            wait = _wait_of(scope)
            if wait:
                await self._long_poll(scope, receive, send, wait)
                return
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Any, send: Any, limit: int) -> None:
        """The app, with the body counted as it arrives and cut off past ``limit``."""
        counted = 0
        over = False
        started = False

        async def counting() -> dict[str, Any]:
            nonlocal counted, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > limit:
                    over = True
                    return {"type": "http.disconnect"}  # Django stops reading; we answer
            return message

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if over:
                    return  # the 413 below answers instead
                started = True
            elif over and not started:
                return
            await send(message)

        await self.app(scope, counting, tracking)
        if over and not started:
            await _problem(
                send, 413, "payload_too_large", f"this route takes bodies of at most {limit} bytes"
            )

    # -- long polls ------------------------------------------------------------------------------

    async def _long_poll(self, scope: Scope, receive: Any, send: Any, wait: float) -> None:
        """Run the poll at once; when it found nothing, wait on the loop for an event its user
        sees (or the deadline, or the client leaving), and run it again."""
        assert self.watch is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        quick = _without_wait(scope)
        status, headers, body = await _capture(self.pooled, quick)
        owner = _header(headers, OWNER_HEADER)
        found = _feed_answer(status, body)
        if found is None or found[0] or owner is None:
            await _send(send, status, headers, body)
            return
        if not self.watch.admit(owner, self.long_polls_per_user):
            await _problem(
                send,
                429,
                "too_many_long_polls",
                f"at most {self.long_polls_per_user} of your requests may wait at once",
                headers=[(b"retry-after", b"1")],
            )
            return
        sees = EVERYONE if _header(headers, SEES_HEADER) == "all" else owner
        again = dict(quick)
        again["headers"] = [*quick["headers"], (REPOLL_HEADER.encode(), REPOLL_TOKEN.encode())]
        disconnected = asyncio.ensure_future(_disconnect(receive))
        try:
            while (remaining := deadline - loop.time()) > 0:
                waiting = asyncio.ensure_future(self.watch.wait(sees, found[1], remaining))
                await asyncio.wait({disconnected, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if disconnected.done():
                    waiting.cancel()
                    return  # nobody to answer
                if not waiting.result():
                    break  # the deadline
                status, headers, body = await _capture(self.pooled, again)
                found = _feed_answer(status, body)
                if found is None or found[0]:
                    await _send(send, status, headers, body)
                    return
        finally:
            disconnected.cancel()
            self.watch.release(owner)
        status, headers, body = await _capture(self.pooled, again)
        await _send(send, status, headers, body)


def _wait_of(scope: Scope) -> float:
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if key == "wait":
            try:
                wait = float(value)
            except ValueError:
                return 0.0  # the view says what is wrong with it
            return wait if 0 < wait <= 30 else 0.0
    return 0.0


def _without_wait(scope: Scope) -> Scope:
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    quick = dict(scope)
    quick["query_string"] = urlencode([(k, v) for k, v in query if k != "wait"]).encode()
    return quick


def _feed_answer(status: int, body: bytes) -> tuple[bool, int] | None:
    """(found any events, next_after) of a feed answer; None when it is not a plain 200."""
    if status != 200:
        return None
    try:
        parsed = orjson.loads(body)
        return bool(parsed["events"]), int(parsed["next_after"])
    except (ValueError, KeyError, TypeError):
        return None


def _header(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    wanted = name.encode()
    return next((v.decode("latin-1") for k, v in headers if k.lower() == wanted), None)


async def _capture(app: ASGIApp, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run a bodiless request through ``app``; its status, headers and body."""
    sent_body = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect to report: the caller watches the client
        return {"type": "http.disconnect"}  # pragma: no cover

    async def collect(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    return status, headers, b"".join(chunks)


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    shown = [
        (k, v)
        for k, v in headers
        if not k.lower().startswith(INTERNAL) and k.lower() != b"content-length"
    ]
    shown.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": shown})
    await send({"type": "http.response.body", "body": body})


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _problem(
    send: Any,
    status: int,
    code: str,
    detail: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps(document(status, code, detail))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
