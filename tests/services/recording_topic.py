"""A stand-in Event Grid topic for the relay's tests: records what the real SDK publishes.

It speaks the publish half of Event Grid (``POST /api/events`` with ``aeg-sas-key``, 200 or an
error) and can be told to fail the next requests, which the emulator cannot be made to do.
The end-to-end tests use the emulator itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

KEY = "topic-test-key"


@dataclass
class RecordingTopic:
    endpoint: str = ""
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer, one per request
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for batch in self.batches for event in batch]

    def ids(self) -> list[str]:
        return [event["id"] for event in self.events]


@contextmanager
def recording_topic() -> Iterator[RecordingTopic]:
    topic = RecordingTopic()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with topic.lock:
                status = topic.fail_next.pop(0) if topic.fail_next else None
                if self.headers.get("aeg-sas-key") != KEY:
                    status = 401
                if status is None:
                    topic.batches.append(orjson.loads(body))
                    topic.sizes.append(len(body))
                    status = 200
                else:
                    topic.refused += 1
            reply = b"" if status == 200 else orjson.dumps({"error": {"code": str(status)}})
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    topic.endpoint = f"http://127.0.0.1:{server.server_address[1]}/api/events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield topic
    finally:
        server.shutdown()
        server.server_close()
