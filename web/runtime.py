"""The background half of a deployment: the projector and the local Functions host.

``make run`` serves one ASGI process that also runs these (``FUNCTIONS_IN_PROCESS``, on for the
local deployment), so one command gives a working toolbox; ``magictoolbox functions`` runs them
on their own. The ASGI wrapper starts them on the server's lifespan startup and stops them on
shutdown; Django's own ASGI handler does not speak the lifespan protocol.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from handlers import wiring
from handlers.deadletters import DeadLetterStore
from handlers.function_app import app as function_app
from handlers.host import LocalFunctionsHost, RetryPolicy
from projections.projector import Projector
from web import bootstrap, live

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]


class Background:
    """The projector and the Functions host of this process, started and stopped together."""

    def __init__(
        self, *, projector: bool = True, workers: int = 4, retry: RetryPolicy | None = None
    ) -> None:
        deps = bootstrap.functions_dependencies()
        deps.blobs.setup()
        deps.store.setup()
        self.projector = (
            Projector(deps.store, settings.DATABASE_URL, on_applied=live.publish)
            if projector
            else None
        )
        self.host = LocalFunctionsHost(
            function_app,
            deps.store,
            DeadLetterStore(settings.DATABASE_URL),
            settings=wiring.settings(),
            topic=settings.MAGICTOOLBOX_SOURCE,
            workers=workers,
            retry=retry,
        )
        self._projector: tuple[threading.Thread, threading.Event] | None = None

    def start(self) -> Background:
        if self.projector is not None:
            self.projector.setup()
            self._projector = self.projector.start()
        self.host.start()
        return self

    def stop(self) -> None:
        self.host.stop()
        if self._projector is not None:
            thread, stop = self._projector
            stop.set()
            thread.join(10)
        if self.projector is not None:
            self.projector.close()


def with_background(application: ASGIApp) -> ASGIApp:
    """``application`` plus the lifespan protocol: Background runs while the server runs."""
    running: dict[str, Background] = {}

    async def app(scope: Scope, receive: Callable[..., Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if settings.FUNCTIONS_IN_PROCESS:
                        running["background"] = Background().start()
                        log.info("projector and Functions host running in this process")
                except Exception as exc:
                    log.exception("the background services did not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                background = running.pop("background", None)
                if background is not None:
                    background.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app
