"""What the edge (``web.edge``) asks of Django before a body is read: is this request signed in,
what may this tool's upload weigh, and the process's one feed watcher.

``authenticated`` runs on the edge's own two threads (never the event loop): a token this
process remembers costs nothing, another one a single indexed read; a session cookie a read of
the session store. It only decides whether the body may be read at all; Django authenticates the
request fully afterwards, as always.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import close_old_connections, connections
from django.http import parse_cookie

from web.api import feed
from web.api.auth import remembered_user, token_key
from web.parts import parts
from web.waiting import FeedWatch

log = logging.getLogger(__name__)


def _token_user_exists(key: str) -> bool:
    from rest_framework.authtoken.models import Token

    return Token.objects.filter(key=key, user__is_active=True).exists()


def _session_signed_in(session_key: str) -> bool:
    from importlib import import_module

    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key).get(SESSION_KEY) is not None


def authenticated(scope: MutableMapping[str, Any]) -> bool:
    """Does the request carry a valid token or a signed-in session? (A thread, not the loop.)"""
    authorization: bytes | None = None
    cookie: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"cookie":
            cookie = value.decode("latin-1")
    for attempt in range(2):
        try:
            close_old_connections()
            if authorization:
                key = token_key(authorization)
                if key is None:
                    return False
                return remembered_user(key) is not None or _token_user_exists(key)
            if cookie:
                session_key = parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME)
                return bool(session_key) and _session_signed_in(session_key)
            return False
        except Exception:
            log.warning("edge authentication failed (attempt %d)", attempt + 1, exc_info=True)
            connections.close_all()  # a stale connection: the next attempt opens another
    return False


def tool_limit(slug: str) -> int | None:
    """The upload limit of a tool by slug; None when there is no such tool."""
    try:
        return parts().registry.get(slug).upload_limit
    except LookupError:
        return None


_watch: FeedWatch | None = None
WATCH_BATCH = 1000


def _owned_events(after: int) -> list[tuple[int, str | None]]:
    """The executions' events after a position, as (position, owner): what the watcher wakes
    waiters for (owners as the feed learns them, ``web.api.feed``)."""
    return [(event.position, owner) for event, owner in feed.owned(after, WATCH_BATCH)]


def feed_watch() -> FeedWatch:
    """This process's one watcher of the event feed's head (started on the first waiter)."""
    global _watch
    if _watch is None:
        _watch = FeedWatch(
            lambda: parts().store.head_position(),
            _owned_events,
            lambda after, timeout: parts().store.wait_for(after, timeout),
        )
    return _watch
