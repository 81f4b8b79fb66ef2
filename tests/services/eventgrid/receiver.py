"""A subscriber endpoint for the emulator's tests: a real HTTP server on 127.0.0.1 that records
every request and answers as scripted, handshakes included."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def kind(self) -> str:
        return self.headers.get("aeg-event-type", "")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # The emulator hung up on a slow answer (its delivery timeout): expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """``handshake``: answer handshakes correctly (True), refuse them (False), or refuse the
    first N (an int). ``statuses``: the answers to the first notifications, in order, then
    ``default``. ``delay``: seconds to sit on each notification before answering."""

    def __init__(
        self,
        *,
        handshake: bool | int = True,
        statuses: Iterable[int] = (),
        default: int = 200,
        delay: float = 0.0,
        validation_answer: Callable[[str], tuple[int, bytes]] | None = None,
    ) -> None:
        self.handshake = handshake
        self.statuses = list(statuses)
        self.default = default
        self.delay = delay
        self.validation_answer = validation_answer
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._handshakes = 0
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/events"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def notifications(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.kind == "Notification"]

    @property
    def handshakes(self) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "OPTIONS" or r.kind == "SubscriptionValidation"
            ]

    def events(self) -> list[dict[str, Any]]:
        return [event for r in self.notifications for event in r.json()]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """At least ``count`` delivered events (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(events := self.events()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(events)} of {count} events arrived in {timeout} s")
            time.sleep(0.01)
        return events

    def _passes_handshake(self) -> bool:
        with self._lock:
            self._handshakes += 1
            number = self._handshakes
        if isinstance(self.handshake, bool):
            return self.handshake
        return number > self.handshake

    def _next_status(self) -> int:
        with self._lock:
            return self.statuses.pop(0) if self.statuses else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> Request:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                    time.monotonic(),
                )
                with receiver._lock:
                    receiver.requests.append(request)
                return request

            def _answer(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self) -> None:
                request = self._record()
                origin = request.headers.get("webhook-request-origin", "")
                if receiver._passes_handshake():
                    self._answer(200, headers={"WebHook-Allowed-Origin": origin})
                else:
                    self._answer(403)

            def do_POST(self) -> None:
                request = self._record()
                if request.kind == "SubscriptionValidation":
                    code = request.json()[0]["data"]["validationCode"]
                    if receiver.validation_answer is not None:
                        self._answer(*receiver.validation_answer(code))
                    elif receiver._passes_handshake():
                        self._answer(200, orjson.dumps({"validationResponse": code}))
                    else:
                        self._answer(400)
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                self._answer(receiver._next_status())

        return Handler
