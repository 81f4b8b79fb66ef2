"""The ASGI application (``uvicorn web.asgi:application``); what ``make run`` serves.

Ordinary requests run Django's WSGI handler on a fixed pool of threads (a2wsgi): one trip through
the middleware on a thread that keeps its connections, cheaper than the ASGI handler's hops.
Requests that stream or wait (live updates, downloads, the feed's long poll, uploads over 1 MB)
go to Django's ASGI handler and hold no pool thread. In front, ``web.api.fastpath`` answers a
token's status poll when it can answer exactly as Django would; ``web.runtime`` starts the
background work on the server's lifespan.
"""

import os
import re
import warnings

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

django_asgi = get_asgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402

from web.api.fastpath import with_fast_status  # noqa: E402 - needs Django set up first
from web.runtime import with_background  # noqa: E402

django_wsgi = WSGIMiddleware(get_wsgi_application(), workers=settings.MAGICTOOLBOX.WEB_THREADS)

SMALL_BODY = 1024 * 1024
STREAMING = re.compile(r"^/(live/|api/v1/events/|api/v1/executions/[^/]+/download/)")

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


application = with_background(with_fast_status(django_application))
