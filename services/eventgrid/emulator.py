"""A local Azure Event Grid topic: the azure-eventgrid SDK publishes to it as to Azure, and it
pushes to the configured subscriptions as Event Grid does (``services.eventgrid.pushing``).

``POST /api/events`` takes a batch with the topic's key or an SAS token made from it, and answers
as Event Grid does (200; 401; 413 over 1 MB, counted while reading; 400 for a malformed batch,
with Event Grid's error body). ``GET /emulator/status`` shows each subscription's counters.
Events live in memory only, as in a stopped topic.
"""

from __future__ import annotations

import asyncio
import hmac
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
import uvicorn

from services.eventgrid import protocol
from services.eventgrid.pushing import (
    DELIVERY_TIMEOUT,
    HANDSHAKE_DELAYS,
    MAX_IN_FLIGHT,
    PENDING,
    Subscriber,
)
from services.eventgrid.sas import sas_problem
from services.eventgrid.subscriptions import EmulatorConfig, load_config

PUBLISH_PATH = "/api/events"
STATUS_PATH = "/emulator/status"
VALIDATE_PATH = "/emulator/validate"
KEY_HEADER = "aeg-sas-key"
TOKEN_HEADER = "aeg-sas-token"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Refused(Exception):
    """A publish Event Grid would refuse: its status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Emulator:
    """The ASGI app: one topic and its subscribers, started and stopped by the lifespan."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        retry_scale: float = 1.0,
        delivery_timeout: float = DELIVERY_TIMEOUT,
        handshake_delays: Sequence[float] = HANDSHAKE_DELAYS,
        max_in_flight: int = MAX_IN_FLIGHT,
        public_url: str = "",
    ) -> None:
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.subscribers = {
            s.name: Subscriber(
                s,
                config.topic,
                retry_scale=retry_scale,
                delivery_timeout=delivery_timeout,
                handshake_delays=handshake_delays,
                max_in_flight=max_in_flight,
                validation_url=self._validation_url,
            )
            for s in config.subscriptions
        }
        self.accepted = 0

    def _validation_url(self, subscription: str, code: str) -> str:
        query = urlencode({"subscription": subscription, "code": code})
        return f"{self.public_url}{VALIDATE_PATH}?{query}"

    def status(self) -> dict[str, Any]:
        return {
            "topic": self.config.topic.name,
            "inputSchema": self.config.topic.input_schema,
            "endpoint": f"{self.public_url}{PUBLISH_PATH}",
            "accepted": self.accepted,
            "subscriptions": {name: s.status() for name, s in self.subscribers.items()},
            "settled": self.settled,  # every handshake has ended: ready for a test or a user
        }

    @property
    def settled(self) -> bool:
        """Every handshake has ended, passed or failed."""
        return all(s.state != PENDING for s in self.subscribers.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        try:
            if path == PUBLISH_PATH:
                if method != "POST":
                    raise Refused(405, "MethodNotAllowed", f"{method} is not allowed: use POST")
                await self._publish(scope, receive)
                await _respond(send, 200, b"")
            elif path == STATUS_PATH and method == "GET":
                await _respond(send, 200, orjson.dumps(self.status()), "application/json")
            elif path == VALIDATE_PATH and method == "GET":
                await self._validate(scope, send)
            else:
                raise Refused(404, "NotFound", f"nothing at {method} {path}")
        except Refused as refused:
            body = {"error": {"code": refused.code, "message": refused.message}}
            await _respond(send, refused.status, orjson.dumps(body), "application/json")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for subscriber in self.subscribers.values():
                    subscriber.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.gather(*(s.stop() for s in self.subscribers.values()))
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _publish(self, scope: Scope, receive: Receive) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not query.get("api-version"):
            raise Refused(400, "BadRequest", "the api-version query parameter is required")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self._authenticate(headers)
        try:
            body = await protocol.read_body(receive, headers)
        except protocol.TooLarge as exc:
            raise Refused(413, "RequestEntityTooLarge", str(exc)) from None
        except protocol.MalformedEvents as exc:
            raise Refused(400, "BadRequest", str(exc)) from None
        events = self._parse(body, headers.get("content-type", ""))
        received = time.monotonic()
        for subscriber in self.subscribers.values():
            subscriber.offer(events, received)
        self.accepted += len(events)

    def _authenticate(self, headers: dict[str, str]) -> None:
        key = self.config.topic.key
        if KEY_HEADER in headers:
            if not hmac.compare_digest(headers[KEY_HEADER].encode(), key.encode()):
                raise Refused(401, "Unauthorized", f"the {KEY_HEADER} is not the topic's key")
            return
        if TOKEN_HEADER in headers:
            problem = sas_problem(headers[TOKEN_HEADER], key, PUBLISH_PATH)
            if problem is not None:
                raise Refused(401, "Unauthorized", f"the {TOKEN_HEADER} is refused: {problem}")
            return
        raise Refused(
            401, "Unauthorized", f"the request carries neither {KEY_HEADER} nor {TOKEN_HEADER}"
        )

    def _parse(self, body: bytes, content_type: str) -> list[protocol.DeliveredEvent]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Refused(400, "BadRequest", f"the body is not JSON: {exc}") from None
        if isinstance(doc, dict) and content_type.startswith(protocol.CLOUDEVENT):
            doc = [doc]  # one structured-mode CloudEvent
        if not isinstance(doc, list):
            raise Refused(400, "BadRequest", "the body must be a JSON array of events")
        if not doc:
            raise Refused(400, "BadRequest", "the batch holds no events")
        topic, events = self.config.topic, []
        for index, item in enumerate(doc):
            if topic.input_schema == protocol.EVENTGRID and isinstance(item, dict):
                item.setdefault("topic", topic.resource_id)
                item.setdefault("metadataVersion", "1")
            try:
                event = protocol.parse_event(item, index)
            except protocol.MalformedEvents as exc:
                raise Refused(400, "BadRequest", str(exc)) from None
            if event.schema != topic.input_schema:
                raise Refused(
                    400,
                    "BadRequest",
                    f"event {index} is in the {event.schema}, "
                    f"but topic {topic.name} takes the {topic.input_schema}",
                )
            events.append(event)
        return events

    async def _validate(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        subscriber = self.subscribers.get((query.get("subscription") or [""])[0])
        if subscriber is None or not subscriber.validate((query.get("code") or [""])[0]):
            raise Refused(400, "BadRequest", "no pending subscription has this validation code")
        await _respond(send, 200, b"Webhook successfully validated.", "text/plain")


async def _respond(send: Send, status: int, body: bytes, content_type: str = "") -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn's server, telling us when it listens."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_listening()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmulatorServer:
    """The emulator on a free (or given) port, served by uvicorn in a background thread.

    ``config`` is a loaded config or the path of a file. ``start()`` returns once it listens
    and, by default, every subscription's handshake has ended; ``endpoint`` is what
    ``EventGridPublisherClient`` takes; ``status()`` the counters; ``stop()`` ends it (and
    with it every undelivered event).
    """

    def __init__(
        self,
        config: EmulatorConfig | str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        retry_scale: float = 1.0,
        *,
        delivery_timeout: float = DELIVERY_TIMEOUT,
        handshake_delays: Sequence[float] = HANDSHAKE_DELAYS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if not isinstance(config, EmulatorConfig):
            config = load_config(config)
        self._socket = _bind(host, port)
        self.host, self.port = host, self._socket.getsockname()[1]
        self.url = _url(host, self.port)
        self.endpoint = f"{self.url}{PUBLISH_PATH}"
        self.app = Emulator(
            config,
            retry_scale=retry_scale,
            delivery_timeout=delivery_timeout,
            handshake_delays=handshake_delays,
            max_in_flight=max_in_flight,
            public_url=self.url,
        )
        self._listening = threading.Event()
        self._server = _Server(_uvicorn_config(self.app), self._listening.set)
        self._thread = threading.Thread(
            target=self._run, name=f"eventgrid-emulator-{self.port}", daemon=True
        )

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self, *, wait_for_handshakes: bool = True, timeout: float = 60.0) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Event Grid emulator did not start on {self.url}")
        while wait_for_handshakes and not self.app.settled:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the subscriptions' handshakes did not end in time")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def status(self) -> dict[str, Any]:
        return self.app.status()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _uvicorn_config(app: Emulator) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,  # leave logging to whoever runs us
        access_log=False,
        timeout_graceful_shutdown=3,
    )


def serve(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 6500,
    retry_scale: float = 1.0,
    *,
    delivery_timeout: float = DELIVERY_TIMEOUT,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Run the emulator in this thread until SIGTERM or Ctrl-C; ``on_listening`` gets the
    publish endpoint once the socket accepts connections."""
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    app = Emulator(
        config, retry_scale=retry_scale, delivery_timeout=delivery_timeout, public_url=url
    )
    server = _Server(
        _uvicorn_config(app), lambda: on_listening and on_listening(f"{url}{PUBLISH_PATH}")
    )
    # uvicorn stops on SIGTERM/SIGINT, then raises the signal again for the previous handler;
    # a no-op there makes a requested stop a clean exit (status 0, no KeyboardInterrupt).
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, lambda *_: None) for s in STOP_SIGNALS} if main else {}
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
