"""Long polls through the real server on PostgreSQL: waiting costs no thread and no connection.

The issue's reproduction was 55 concurrent ``GET /api/v1/events/?wait=`` from one user: each
held a thread and its own PostgreSQL connection, until "too many clients" failed everyone. Here
55 waits leave the server's connection count where a busy thread pool left it, ``/healthz``
and another user's reads stay quick, and a new event answers every waiter at once. Past
``LONG_POLLS_PER_USER`` a user's next wait is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.contained import Server, client, create_users, server_env
from tests.e2e.edge import Bystander

pytestmark = [pytest.mark.timeout(300), pytest.mark.timed]

PG = "postgresql://postgres@127.0.0.1:5432/test"
WAITERS = 55
WEB_THREADS = 16  # the default: threads serving ordinary requests


def connections(application: str) -> int:
    with psycopg.connect(PG, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchone()[0]


class Peak:
    """The most connections the server held while the ``with`` body ran (sampled every 50 ms)."""

    def __init__(self, application: str) -> None:
        self.application = application
        self.most = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        with psycopg.connect(PG, autocommit=True) as conn:
            while not self._stop.is_set():
                count = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (self.application,),
                ).fetchone()[0]
                self.most = max(self.most, count)
                self._stop.wait(0.05)

    def __enter__(self) -> Peak:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def application() -> str:
    return f"edge-{uuid.uuid4().hex[:10]}"


def _server(tmp_path: Path, pg_store_url: str, application: str, **extra: str) -> Server:
    url = f"{pg_store_url}&application_name={application}"
    return Server(server_env(tmp_path, url, **extra), tmp_path / "server.log")


@pytest.fixture
def server(tmp_path: Path, pg_store_url: str, application: str) -> Iterator[Server]:
    running = _server(tmp_path, pg_store_url, application, LONG_POLLS_PER_USER=str(WAITERS + 5))
    try:
        yield running
    finally:
        running.stop()


def _head(api: httpx.Client) -> int:
    return api.get("/api/v1/events/", params={"after": 0, "limit": 1000}).json()["head"]


def test_fifty_five_waiting_polls_hold_no_connection_and_wake_together(
    server: Server, application: str
) -> None:
    tokens = create_users(server.env, "poller", "bystander")
    bystander = Bystander(server.url, tokens["bystander"])
    bystander.measure_idle()
    with client(server.url, tokens["poller"]) as api:
        head = _head(api)
        api.get("/api/v1/events/", params={"after": head, "wait": 0.5})  # the watcher started
    # Every thread of the web used (its pool, the fast status path's): each keeps its own
    # connections to the event store and the read models; Django's own connection lives for one
    # request, so the pool's threads add at most one each while busy. That is the pool's size.
    with ThreadPoolExecutor(40) as burst:
        with client(server.url, tokens["poller"]) as api:
            paths = ["/api/v1/executions/", f"/api/v1/events/?after={head}"] * 150
            list(burst.map(api.get, paths))
        with client(server.url, tokens["bystander"]) as api:
            list(burst.map(lambda _: api.get(bystander.path), range(300)))
    time.sleep(0.5)
    pool_connections = connections(application) + WEB_THREADS

    # The attacker's client is made first: what its own machine spends on it is not the server's.
    attacker = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Token {tokens['poller']}"},
        timeout=60,
        limits=httpx.Limits(max_connections=WAITERS),
    )

    def poll(_: int) -> tuple[int, int, float]:
        started = time.monotonic()
        answer = attacker.get("/api/v1/events/", params={"after": head, "wait": 25})
        return answer.status_code, len(answer.json().get("events", [])), started

    with attacker, bystander.watching(), ThreadPoolExecutor(WAITERS) as waiters:
        with Peak(application) as waiting:
            polls = [waiters.submit(poll, i) for i in range(WAITERS)]
            time.sleep(3)  # all of them waiting
        waiting_connections = waiting.most
        health = httpx.get(f"{server.url}/healthz", timeout=10)
        time.sleep(1)
        with client(server.url, tokens["poller"]) as api:
            woke = time.monotonic()
            made = api.post(
                "/api/v1/executions/", json={"tool": "hash-text", "params": {"text": "hi"}}
            )
        answers = [p.result(timeout=30) for p in polls]
        answered = time.monotonic()
    print(
        f"{WAITERS} waiting: {waiting_connections} connections (the pool: "
        f"{pool_connections}); all answered {answered - woke:.2f} s after the event"
    )
    assert made.status_code == 201
    assert health.status_code == 200
    assert all(status == 200 and found >= 1 for status, found, _ in answers), answers
    assert waiting_connections <= pool_connections, (waiting_connections, pool_connections)
    assert answered - woke < 5
    bystander.check()


def test_past_the_cap_a_users_next_wait_is_429_and_others_still_wait(
    tmp_path: Path, pg_store_url: str, application: str
) -> None:
    server = _server(tmp_path, pg_store_url, application, LONG_POLLS_PER_USER="3")
    try:
        tokens = create_users(server.env, "greedy", "other", "bystander")
        bystander = Bystander(server.url, tokens["bystander"])
        bystander.measure_idle()
        with client(server.url, tokens["greedy"]) as api:
            head = _head(api)

        def poll(token: str) -> httpx.Response:
            with client(server.url, token, timeout=30) as mine:
                return mine.get("/api/v1/events/", params={"after": head + 10**6, "wait": 4})

        with bystander.watching(), ThreadPoolExecutor(8) as waiters:
            greedy = [waiters.submit(poll, tokens["greedy"]) for _ in range(6)]
            time.sleep(1)
            other = waiters.submit(poll, tokens["other"])
            greedy_answers = [g.result() for g in greedy]
            other_answer = other.result()
        statuses = sorted(a.status_code for a in greedy_answers)
        print(f"greedy: {statuses}; other: {other_answer.status_code}")
        assert statuses == [200, 200, 200, 429, 429, 429]
        refused = next(a for a in greedy_answers if a.status_code == 429)
        assert refused.json()["code"] == "too_many_long_polls"
        assert refused.headers["Retry-After"] == "1"
        assert other_answer.status_code == 200
        bystander.check()
    finally:
        server.stop()
