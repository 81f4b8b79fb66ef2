"""The background half of a deployment: the projector, the local Functions host, the relay, the
user-webhook delivery worker and the audit anchorer.

``make run`` serves one ASGI process that also runs the projector, the Functions host (on for
the local deployment) and webhook deliveries, so one command gives a working toolbox;
``magictoolbox functions`` runs the host on its own. In Azure mode the web process runs the
projector and webhook deliveries, the outbox relay beside it in a process of its own
(``web.sidecar``), and Event Grid pushes to the Functions; the
Event Grid receiver ``wake``s the projector and the webhook worker. The ASGI wrapper starts them
on the server's lifespan startup and stops them on shutdown; Django's own ASGI handler does not
speak the lifespan protocol.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from handlers import anchoring, function_app
from handlers.bootstrap import Parts
from handlers.host import LocalFunctionsHost, RetryPolicy
from handlers.settings import Settings
from web import live
from web.parts import parts
from web.sidecar import Sidecar, management_command

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]


_wake_listeners: list[Callable[[], None]] = []
_wake_lock = threading.Lock()


def on_wake(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` whenever Event Grid tells this process that events arrived."""
    with _wake_lock:
        _wake_listeners.append(listener)
    return listener


def forget_wake(listener: Callable[[], None]) -> None:
    with _wake_lock:
        if listener in _wake_listeners:
            _wake_listeners.remove(listener)


def wake() -> int:
    """New events are in the store (Event Grid said so): catch up now. Returns listeners woken.

    Listeners only nudge (a projector pass, a delivery round) and return at once; what they do
    reads the store, so a duplicate or out-of-order delivery changes nothing.
    """
    with _wake_lock:
        listeners = list(_wake_listeners)
    for listener in listeners:
        try:
            listener()
        except Exception:
            log.exception("a wake listener failed")
    return len(listeners)


class Background:
    """What runs beside the web in this process, started and stopped together.

    - the projector (``PROJECTOR_IN_PROCESS``), woken by the store and by Event Grid (``wake``);
    - the local Functions host (``FUNCTIONS_IN_PROCESS``): delivers the feed to the functions
      and runs their timers; with ``feed=False`` only the timers (Event Grid pushes the events
      to the HTTP trigger instead, ``magictoolbox functions --http``);
    - the outbox relay to Event Grid (``RELAY_IN_PROCESS``, with ``EVENTGRID_TOPIC_ENDPOINT``),
      as ``magictoolbox relay`` in a process of its own at ``RELAY_NICE`` (``web.sidecar``),
      started, restarted and stopped with this one;
    - the user-webhook delivery worker (``WEBHOOKS_IN_PROCESS``), woken like the projector; the
      ``webhooks`` timer sweeps behind it (the same dispatcher, so one connection serves both);
    - the audit anchorer (``anchors``: whenever anything else runs here), which signs the feed's
      and the streams' heads as the feed advances (handlers.anchoring).

    The host's ``workers`` are invocations in flight, not CPUs: each run's invocation waits for
    a tool worker in the pool's fair queue, which is what shares the CPUs between owners.
    """

    def __init__(
        self,
        deployment: Parts,
        *,
        projector: bool = True,
        host: bool = True,
        relay: bool = False,
        webhooks: bool = False,
        anchors: bool = False,
        feed: bool = True,
        workers: int = 64,
        retry: RetryPolicy | None = None,
    ) -> None:
        deployment.blobs.setup()
        deployment.store.setup()
        self.projector = deployment.projector(on_applied=live.publish) if projector else None
        # The Functions app over this process's parts: the functions the host runs use them.
        self.app = function_app.create(lambda: deployment)
        self.host = (
            LocalFunctionsHost(
                self.app,
                deployment.store,
                deployment.deadletters(),
                settings=deployment.settings.schedules,
                topic=deployment.settings.source,
                workers=workers,
                retry=retry,
                feed=feed,
                # The relay timer publishes and anchors: with the relay beside this process and
                # the anchorer in it, both are done already, and publishing here would bring the
                # GIL cost back into the web every RELAY_SCHEDULE.
                skip_timers=("relay",) if relay and anchors else (),
            )
            if host
            else None
        )
        self.relay: Sidecar | None = None
        if relay:
            config = deployment.settings
            if not config.EVENTGRID_TOPIC_ENDPOINT:
                raise ImproperlyConfigured("RELAY_IN_PROCESS needs EVENTGRID_TOPIC_ENDPOINT")
            # ``magictoolbox relay`` beside this process: its publishing would hold this
            # interpreter's GIL in stretches that other users' requests wait behind.
            self.relay = Sidecar("relay", management_command("relay"), nice=config.RELAY_NICE)
        self.webhooks = deployment.dispatcher() if webhooks else None
        self.anchorer = anchoring.anchorer(deployment) if anchors else None
        self.deployment = deployment
        self._threads: list[tuple[threading.Thread, threading.Event]] = []

    @classmethod
    def from_settings(cls, deployment: Parts) -> Background | None:
        """What the settings ask this web process to run, or None for nothing."""
        config = deployment.settings
        wanted = {
            "projector": config.PROJECTOR_IN_PROCESS,
            "host": config.functions_in_process,
            "relay": config.relay_in_process,
            "webhooks": config.WEBHOOKS_IN_PROCESS,
        }
        return cls(deployment, **wanted, anchors=True) if any(wanted.values()) else None

    def parts(self) -> list[str]:
        named = [("projector", self.projector), ("Functions host", self.host)]
        named.append(("relay to Event Grid (a process of its own)", self.relay))
        named.append(("webhook deliveries", self.webhooks))
        named.append(("audit anchors", self.anchorer))
        return [name for name, part in named if part is not None]

    def start(self) -> Background:
        # The tool workers start now, not on the first run (a sync request would wait for them).
        self.deployment.pool().warm()
        if self.projector is not None:
            self.projector.setup()
            self._threads.append(self.projector.start())
            on_wake(self.projector.nudge)
        if self.host is not None:
            self.host.start()
        if self.relay is not None:
            self._threads.append(self.relay.start())
        if self.webhooks is not None:
            self.webhooks.setup()
            self._threads.append(self.webhooks.start())
            on_wake(self.webhooks.wake)
        if self.anchorer is not None:
            self._threads.append(self.anchorer.start())
        return self

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
        if self.projector is not None:
            forget_wake(self.projector.nudge)
        if self.webhooks is not None:
            forget_wake(self.webhooks.wake)
        for _, stop in self._threads:
            stop.set()
        for thread, _ in self._threads:
            thread.join(10)
        if self.projector is not None:
            self.projector.close()
        if self.webhooks is not None:
            self.webhooks.close()
        if self.anchorer is not None:
            self.anchorer.close()
        self.deployment.stop_workers()


def postgres_connections(config: Settings) -> tuple[int, str] | None:
    """The most PostgreSQL connections this web process opens, and how that adds up (None on
    SQLite). Every connection comes from a pool of a fixed size (events.pools, Django's) or is
    one of the store's two for LISTEN/NOTIFY; waiting requests (long polls) hold none. A relay
    beside the web (``web.sidecar``) is another process, with pools of its own that its one
    thread keeps at a connection or two."""
    parts_: list[tuple[int, str]] = []
    if config.eventstore_url.startswith("postgres"):
        parts_.append((config.DB_POOL_SIZE, "the event store's pool"))
        parts_.append((2, "the store's LISTEN and NOTIFY"))
    if config.DATABASE_URL.startswith("postgres"):
        parts_.append((config.DB_POOL_SIZE, "the read models' pool"))
        parts_.append((settings.DJANGO_POOL_SIZE, "Django's pool"))
    if not parts_:
        return None
    return sum(n for n, _ in parts_), " + ".join(f"{n} {what}" for n, what in parts_)


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
                    background = Background.from_settings(parts())
                    if background is not None:
                        running["background"] = background.start()
                        log.info(
                            "running in this process: %s",
                            ", ".join(background.parts()) or "nothing",
                        )
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
