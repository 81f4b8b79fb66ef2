"""User webhooks under load: ``events`` execution events fanned out to ``endpoints`` endpoints.

The store (PostgreSQL) holds the events of executions owned by one user with ten endpoints,
each a path of one receiver process (``tests.bench.webhook_receiver``, uvicorn). The dispatcher
(``services.webhooks.dispatcher``) fans the feed out into messages and delivers them: SSRF
check, Standard Webhooks signature, POST, the attempt logged and the message closed. Counted at
the receiver: every (endpoint, webhook-id) must arrive, none lost.

The baseline is httpx alone posting as many signed requests of the same size to the same
receiver at the same concurrency (a connection pool per endpoint, as the dispatcher keeps them),
bodies built beforehand: the HTTP ceiling of this client, without the bookkeeping that makes
delivery durable.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import uvloop

from events.database import Database
from events.opening import open_store
from services.webhooks import endpoints as webhook_endpoints, tables
from services.webhooks.dispatcher import WebhookDispatcher
from services.webhooks.signing import headers as signed_headers, new_secret
from tests.bench.places import PostgresSchemas
from tests.events.factories import execution_events
from tests.web.support import ROOT, free_port

OWNER = "7"  # the owner in tests.events.factories' executions


@dataclass(frozen=True)
class WebhookPlan:
    events: int = 10_000
    endpoints: int = 10


FULL_WEBHOOK_PLAN = WebhookPlan()
QUICK_WEBHOOK_PLAN = WebhookPlan(events=400, endpoints=10)


@dataclass(frozen=True)
class WebhookFigures:
    events: int
    endpoints: int
    expected: int  # deliveries owed
    delivered: int  # distinct (endpoint, webhook-id) at the receiver
    requests: int  # POSTs the receiver answered (more than delivered means duplicates)
    fan_out_seconds: float
    deliver_seconds: float
    baseline_per_second: float
    in_flight: int
    first_pass: int = 0  # delivered by the timed pass; the rest after a retry (a failed attempt)
    retried: int = 0  # attempts of the timed pass that failed and were scheduled again

    @property
    def per_second(self) -> float:
        return self.first_pass / self.deliver_seconds if self.deliver_seconds else 0.0


def _counts(url: str) -> dict[str, list[int]]:
    return httpx.get(f"{url}/counts", timeout=10).json()


def _start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.webhook_receiver", str(port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            _counts(url)
            return process, url
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the webhook receiver did not start") from None
            time.sleep(0.05)


async def _baseline(url: str, paths: list[str], body: bytes, total: int, in_flight: int) -> float:
    """httpx alone: the same number of signed POSTs, ``in_flight`` at a time, one client (and
    connection pool) per endpoint as the dispatcher keeps them."""
    secret = new_secret()
    per_path = max(1, in_flight // len(paths))
    clients = [
        httpx.AsyncClient(
            limits=httpx.Limits(max_connections=per_path, max_keepalive_connections=per_path),
            trust_env=False,
            timeout=15,
        )
        for _ in paths
    ]
    queue = iter(range(total))

    async def worker(client: httpx.AsyncClient, path: str) -> None:
        for n in queue:
            head = signed_headers([secret], f"baseline-{n}", int(time.time()), body)
            await client.post(f"{url}/{path}", content=body, headers=head)

    started = time.perf_counter()
    await asyncio.gather(
        *(worker(c, p) for c, p in zip(clients, paths, strict=True) for _ in range(per_path))
    )
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return total / elapsed


def measure_webhooks(
    pg_url: str, plan: WebhookPlan, progress: Callable[[str], None]
) -> WebhookFigures:
    receiver, url = _start_receiver()
    try:
        with PostgresSchemas(pg_url) as schemas:
            database_url = f"{pg_url}?schema={schemas.new('webhooks')}"
            store = open_store(database_url)
            store.setup()
            db = Database(database_url)
            dispatcher = WebhookDispatcher(store, database_url, allow_loopback_http=True)
            try:
                tables.setup(db)
                paths = [f"e{i}" for i in range(plan.endpoints)]
                for path in paths:
                    webhook_endpoints.create_endpoint(
                        db, owner=OWNER, url=f"{url}/{path}", secret=new_secret()
                    )
                progress(f"webhooks: {plan.events:,} events for {plan.endpoints} endpoints")
                for _ in range(plan.events // 4):
                    stream, events = execution_events()
                    store.append(stream, events)
                body_size = len(orjson.dumps(store.read_all(0, limit=1)[0].to_cloudevent()))
                started = time.perf_counter()
                dispatcher.fan_out_pending()
                fanned = time.perf_counter()
                first = dispatcher.run_once()
                done = time.perf_counter()
                retried = first.retrying + first.errors
                if retried:  # a failed attempt waits for its backoff: deliver it now, not lose it
                    later = datetime.now(UTC) + timedelta(days=1)
                    for _ in range(5):
                        if dispatcher.run_once(now=later).attempts == 0:
                            break
                counts = _counts(url)
                options = dispatcher.options
                in_flight = min(options.max_in_flight, options.per_endpoint * plan.endpoints)
                progress("webhooks: httpx alone, the same requests")
                # On uvloop, as the dispatcher runs.
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    baseline = runner.run(
                        _baseline(
                            url,
                            [f"base{i}" for i in range(plan.endpoints)],
                            b"x" * body_size,
                            plan.events * plan.endpoints,
                            in_flight,
                        )
                    )
            finally:
                dispatcher.close()
                db.close()
                store.close()
    finally:
        receiver.terminate()
        receiver.wait(10)
    mine = {k: v for k, v in counts.items() if k.startswith("e")}
    return WebhookFigures(
        events=plan.events - plan.events % 4,
        endpoints=plan.endpoints,
        expected=(plan.events - plan.events % 4) * plan.endpoints,
        delivered=sum(distinct for _, distinct in mine.values()),
        requests=sum(total for total, _ in mine.values()),
        fan_out_seconds=fanned - started,
        deliver_seconds=done - fanned,
        baseline_per_second=baseline,
        in_flight=in_flight,
        first_pass=first.delivered,
        retried=retried,
    )


def render(f: WebhookFigures) -> str:
    lost = f.expected - f.delivered
    return "\n".join(
        [
            f"User webhooks (PostgreSQL, one receiver process), load average "
            f"{os.getloadavg()[0]:.2f}",
            f"  {f.events:,} events fanned out to {f.endpoints} endpoints = {f.expected:,} "
            f"deliveries, {f.in_flight} in flight at most:",
            f"    fan-out (feed → messages)        {f.fan_out_seconds:6.2f} s",
            f"    dispatcher (sign, POST, log)     {f.per_second:8,.0f} deliveries/s  "
            f"({f.deliver_seconds:.2f} s; {f.first_pass:,} delivered, {f.retried:,} failed "
            f"and retried, {lost:,} lost, {f.requests - f.delivered:,} duplicated)",
            f"    httpx alone, same requests       {f.baseline_per_second:8,.0f} requests/s  "
            f"→ dispatcher = {f.per_second / f.baseline_per_second:.2f}x of it",
        ]
    )
