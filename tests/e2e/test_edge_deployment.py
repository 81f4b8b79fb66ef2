"""The Event Grid receiver's key stays out of the server's log, through the real server
(``magictoolbox run``) as the issue found it there: deliveries carrying the key in the
``X-MagicToolbox-Key`` header (what the subscription sends, infra/modules/subscriptions.bicep),
in ``?code=`` (still accepted: Event Grid's handshakes use the endpoint URL), and in ``?code=``
spelled with a percent escape, plus the handshake; then the log holds uvicorn's line for each
request, with ``[redacted]`` where the key was, and no trace of the key or of an API token.

SQLite only: what is logged does not depend on the store.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from services.eventgrid import protocol
from tests.e2e.contained import Server, create_users, server_env
from tests.e2e.edge import Bystander

pytestmark = [pytest.mark.timeout(300), pytest.mark.timed]

EVENTS = "/eventgrid/events"
BATCH = "application/cloudevents-batch+json"
ATTACK_SECONDS = 3.0


def batch() -> bytes:
    return orjson.dumps(
        [
            {
                "specversion": "1.0",
                "id": secrets.token_hex(8),
                "source": "/magictoolbox/elsewhere",
                "type": "Example.Something",
                "time": "2026-01-01T00:00:00Z",
                "data": {},
            }
        ]
    )


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def server(tmp_path: Path, key: str) -> Iterator[Server]:
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'app.sqlite3'}", EVENTGRID_RECEIVER_KEY=key)
    running = Server(env, tmp_path / "server.log")
    try:
        yield running
    finally:
        running.stop()


def test_the_receiver_key_never_reaches_the_log(server: Server, key: str) -> None:
    tokens = create_users(server.env, "bystander")
    bystander = Bystander(server.url, tokens["bystander"])
    bystander.measure_idle()
    notification = {"Content-Type": BATCH, protocol.AEG_EVENT_TYPE: protocol.NOTIFICATION}
    escaped = "%63ode"  # "code", as Django decodes the name
    answers: list[tuple[str, int]] = []
    with bystander.watching(), httpx.Client(base_url=server.url, timeout=30) as grid:
        deadline = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < deadline:
            for how, answer in (
                (
                    "header",
                    grid.post(
                        EVENTS, content=batch(), headers={**notification, "X-MagicToolbox-Key": key}
                    ),
                ),
                ("query", grid.post(f"{EVENTS}?code={key}", content=batch(), headers=notification)),
                (
                    "escaped query",
                    grid.post(f"{EVENTS}?{escaped}={key}", content=batch(), headers=notification),
                ),
                (
                    "handshake",
                    grid.options(
                        f"{EVENTS}?code={key}",
                        headers={protocol.REQUEST_ORIGIN: "eventgrid.azure.net"},
                    ),
                ),
            ):
                answers.append((how, answer.status_code))
            time.sleep(0.02)
    bystander.check()
    assert {status for _, status in answers} == {200}, sorted(set(answers))

    server.stop()  # every line written
    log = server.log.read_text()
    assert key not in log, [line for line in log.splitlines() if key in line][:3]
    assert tokens["bystander"] not in log  # its Authorization header is never logged
    # The requests are in the log, the key's place marked: the access log is on and was read.
    assert f'"POST {EVENTS}?code=[redacted] HTTP/1.1" 200' in log
    assert f'"POST {EVENTS}?{escaped}=[redacted] HTTP/1.1" 200' in log
    assert f'"OPTIONS {EVENTS}?code=[redacted] HTTP/1.1" 200' in log
    assert f'"POST {EVENTS} HTTP/1.1" 200' in log
