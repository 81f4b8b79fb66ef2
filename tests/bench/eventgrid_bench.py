"""The Azure path, measured offline: the outbox relay's throughput and Azure mode's latency.

1. **Relay → topic.** A PostgreSQL store holds ``events`` stored events; the Event Grid emulator
   (its own process, no subscriptions, so it only takes publishes) is the topic. The baseline is
   the azure-eventgrid SDK alone sending the same events, already in memory and cut into the
   same batches, one request after another: what one client can push through that topic. The
   relay does that *and* reads the feed, batches under 1 MB and moves its checkpoint after each
   200. Printed as events/s and as a ratio to the baseline.
2. **Latency of an async execution**, one at a time, submit (API) → ``completed`` (API), for
   ``make run-azure`` (relay → emulator → Functions HTTP trigger → PostgreSQL → projector) beside
   ``make run`` (the local Functions host on the feed), both on PostgreSQL with local blobs.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridPublisherClient
from PIL import Image

from events.checkpoints import StoredCheckpoint
from events.opening import open_store
from events.store import EventStore
from services.eventgrid.relay import OutboxRelay, batches
from tests.bench.pipeline_bench import Latency
from tests.bench.places import PostgresSchemas
from tests.e2e.azure_mode import create_user_with_token, running_emulator, start, wait_ready
from tests.events.factories import execution_events
from tests.web.support import cli_command, cli_env, free_port
from web.core.children import emulator_settled

KEY = "bench-topic-key"


@dataclass(frozen=True)
class EventGridPlan:
    executions: int = 5_000  # four events each
    latency_runs: int = 40
    warmup: int = 5


FULL_EVENTGRID_PLAN = EventGridPlan()
QUICK_EVENTGRID_PLAN = EventGridPlan(executions=500, latency_runs=8, warmup=2)


@dataclass(frozen=True)
class EventGridFigures:
    events: int
    batches: int
    sdk_per_second: float
    relay_per_second: float
    relay_published: int
    azure_latency: Latency | None
    local_latency: Latency | None


def measure_relay(
    store: EventStore, database_url: str, endpoint: str, executions: int
) -> tuple[int, int, float, float, int]:
    for _ in range(executions):
        stream, events = execution_events()
        store.append(stream, events)
    stored = store.read_all(0, limit=executions * 4 + 10)
    cut = [batch.events for batch in batches(stored)]
    client = EventGridPublisherClient(endpoint, AzureKeyCredential(KEY))
    client.send(cut[0][:1])  # connect and warm up outside the timing
    started = time.perf_counter()
    for batch in cut:
        client.send(batch, retry_total=0)
    sdk_seconds = time.perf_counter() - started

    checkpoint = StoredCheckpoint(database_url, "bench-relay")
    checkpoint.setup()
    relay = OutboxRelay(
        store, EventGridPublisherClient(endpoint, AzureKeyCredential(KEY)), checkpoint
    )
    started = time.perf_counter()
    published = relay.run_once()
    relay_seconds = time.perf_counter() - started
    return len(stored), len(cut), len(stored) / sdk_seconds, published / relay_seconds, published


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 8), "white").save(out, "PNG")
    return out.getvalue()


def execution_latencies(url: str, token: str, plan: EventGridPlan) -> Latency:
    picture = png()
    samples: list[float] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30) as api:
        for run in range(plan.warmup + plan.latency_runs):
            started = time.perf_counter()
            answer = api.post(
                "/api/v1/executions/",
                data={"tool": "image-rotate", "params": json.dumps({"angle": 90})},
                files={"file": ("p.png", picture, "image/png")},
            )
            answer.raise_for_status()
            location = f"/api/v1/executions/{answer.json()['id']}/"
            deadline = time.monotonic() + 60
            while api.get(location).json()["status"] not in {"completed", "failed"}:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{location} did not finish in 60 s")
                time.sleep(0.002)
            if run >= plan.warmup:
                samples.append((time.perf_counter() - started) * 1000)
    return Latency(tuple(sorted(samples)))


def _deployment_env(database_url: str, blobs: Path) -> dict[str, str]:
    return cli_env(
        DATABASE_URL=database_url,
        BLOB_STORAGE=str(blobs),
        SECRET_KEY="bench",
        MAGICTOOLBOX_DEPLOYMENT="bench",
        ALLOWED_HOSTS="127.0.0.1",
        API_THROTTLE_USER="1000000/min",
        API_THROTTLE_SUBMIT="1000000/min",
        RETENTION_SCHEDULE="0 0 0 1 1 *",
    )


def measure_latency(
    schemas: PostgresSchemas, workdir: Path, plan: EventGridPlan, azure: bool
) -> Latency:
    name = "azure" if azure else "local"
    database_url = f"{schemas.url}?schema={schemas.new(name)}"
    env = _deployment_env(database_url, workdir / f"{name}-blobs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ready_at, ready = f"{url}/healthz", None
    if azure:
        env.update(EVENTGRID_TOPIC_KEY=KEY, EVENTGRID_RECEIVER_KEY="bench-receiver")
        eventgrid = free_port()
        command = cli_command(
            "run-azure",
            *("--port", str(port), "--functions-port", str(free_port())),
            *("--eventgrid-port", str(eventgrid)),
        )
        # The emulator starts last, once the rest answers: its handshakes done, all is up.
        ready_at, ready = f"http://127.0.0.1:{eventgrid}/emulator/status", emulator_settled
    else:
        env["FUNCTIONS_IN_PROCESS"] = "1"
        command = cli_command("run", "--port", str(port))
    process = start(name, command, env, workdir / f"{name}.log")
    try:
        wait_ready(ready_at, process, 90, ready)
        return execution_latencies(url, create_user_with_token(env), plan)
    finally:
        process.stop()


def measure_eventgrid(
    pg_url: str, plan: EventGridPlan, progress: Callable[[str], None]
) -> EventGridFigures:
    with (
        tempfile.TemporaryDirectory(prefix="mt-bench-eg-") as tmp,
        PostgresSchemas(pg_url) as schemas,
    ):
        workdir = Path(tmp)
        schema = schemas.new("relay")
        database_url = f"{pg_url}?schema={schema}"
        store = open_store(database_url)
        store.setup()
        try:
            topic = {"topic": {"name": "bench", "key": KEY}, "subscriptions": []}
            with running_emulator(workdir, cli_env(), topic) as endpoint:
                progress(f"relay: {plan.executions * 4:,} events to the emulator")
                events, cut, sdk, relay, published = measure_relay(
                    store, database_url, endpoint, plan.executions
                )
        finally:
            store.close()
        progress("latency: make run-azure")
        azure = measure_latency(schemas, workdir, plan, azure=True)
        progress("latency: make run")
        local = measure_latency(schemas, workdir, plan, azure=False)
    return EventGridFigures(events, cut, sdk, relay, published, azure, local)


def render(f: EventGridFigures, plan: EventGridPlan) -> str:
    lines = [
        "Azure path (Event Grid emulator, azure-eventgrid SDK, PostgreSQL), "
        f"load average {os.getloadavg()[0]:.2f}",
        f"  relay → topic, {f.events:,} events in {f.batches} batches under 1 MB:",
        f"    SDK alone, batches in memory    {f.sdk_per_second:9,.0f} events/s",
        f"    outbox relay (feed → checkpoint) {f.relay_per_second:8,.0f} events/s  "
        f"= {f.relay_per_second / f.sdk_per_second:.2f}x the SDK alone "
        f"({f.relay_published:,} published, each once)",
    ]
    if f.azure_latency is not None and f.local_latency is not None:
        lines += [
            f"  async execution, submit → completed through the API, {plan.latency_runs} runs "
            f"after {plan.warmup} warm-up:",
            f"    make run-azure (Event Grid path)  {f.azure_latency.line()}",
            f"    make run (local host on the feed) {f.local_latency.line()}",
        ]
    return "\n".join(lines)
