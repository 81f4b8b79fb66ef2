"""The ASGI application (``uvicorn web.asgi:application``); what ``make run`` serves.

Ordinary requests run Django's WSGI handler on a fixed pool of threads (a2wsgi): one trip through
the middleware on a thread that keeps its connections, cheaper than the ASGI handler's hops.
Requests that stream (live updates, downloads, uploads over 1 MB) go to Django's ASGI handler
and hold no pool thread; the feed's long poll waits on the loop (``web.edge``, ``web.waiting``).
In front of everything, ``web.edge`` checks bodies and uploads before a byte is read; then
``web.api.fastpath`` answers a token's status poll and feed read when it can answer exactly as
Django would (a long poll's reads too); ``web.runtime`` starts the background work on the
server's lifespan.
"""

import os
import re
import sys
import warnings

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
django.setup(set_prefix=False)

from web.uploads import EdgeASGIHandler  # noqa: E402 - needs Django set up first

django_asgi = EdgeASGIHandler()

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402

from web.api.fastpath import with_fast_status  # noqa: E402 - needs Django set up first
from web.edge import Edge  # noqa: E402
from web.gate import authenticated, feed_watch, tool_limit  # noqa: E402
from web.runtime import with_background  # noqa: E402

django_wsgi = WSGIMiddleware(get_wsgi_application(), workers=settings.MAGICTOOLBOX.WEB_THREADS)

# The loop answers the quick requests (the fast paths, the edge's refusals) between the pool's
# threads; a thread running Python hands the interpreter lock over only every switch interval,
# 5 ms by default, and every hop of a quick request may wait that long behind a busy thread.
# At 1 ms a busy neighbour costs another user's read a millisecond a hop, not five.
SWITCH_INTERVAL_SECONDS = 0.001
sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)

SMALL_BODY = 1024 * 1024
STREAMING = re.compile(r"^/(live/|api/v1/executions/[^/]+/download/)")

# WhiteNoise hands Django static files as sync iterators, which Django reads whole before sending
# under ASGI, and says so for every file. Our files are small, and downloads of results use an
# async iterator (web.api.views).
warnings.filterwarnings(
    "ignore", message="StreamingHttpResponse must consume synchronous iterators", category=Warning
)


def streams(scope: dict) -> bool:
    """Does this request stream or wait (ASGI), or is it an ordinary one (the thread pool)?"""
    if STREAMING.match(scope["path"]):
        return True
    if scope["method"] in {"GET", "HEAD", "OPTIONS", "DELETE"}:
        return False
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    return length is None or not length.isdigit() or int(length) > SMALL_BODY


async def django_application(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "http" and not streams(scope):
        await django_wsgi(scope, receive, send)
    else:
        await django_asgi(scope, receive, send)


async def pooled(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await django_wsgi(scope, receive, send)


application = with_background(
    Edge(
        with_fast_status(django_application),
        max_body=settings.MAGICTOOLBOX.MAX_BODY_BYTES,
        long_polls_per_user=settings.MAGICTOOLBOX.LONG_POLLS_PER_USER,
        tool_limit=tool_limit,
        authenticated=authenticated,
        watch=feed_watch(),
        pooled=with_fast_status(pooled),
    )
)
