"""MagicToolbox in "Azure mode", offline: every process and wire of the Azure deployment, on
127.0.0.1, with the real SDKs, as ``magictoolbox run-azure`` starts them.

    web (make run's server)  ──append──▶  PostgreSQL  ◀──append── functions host (HTTP trigger)
        │ relay (azure-eventgrid SDK)                                  ▲
        ▼                                                              │ push, per function
    Event Grid emulator ──push──▶ web receiver /eventgrid/events, a second subscriber, …
                                                                   (blobs: Azurite)

Each part is the command a deployment runs: ``magictoolbox run`` (web, projector, relay),
``magictoolbox functions --http`` (the Functions host's Event Grid trigger) and
``magictoolbox eventgrid-emulator`` (Event Grid), so the tests prove the commands, not a
rearrangement of their insides.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg

from tests.conftest import PG_URL
from tests.services.eventgrid.receiver import Receiver
from tests.web.support import cli_command, cli_env, free_port, run_cli
from web.core.children import Child, ChildFailed, emulator_settled, wait_for

TOPIC_KEY = "e2e-topic-key"
RECEIVER_KEY = "e2e-receiver-key"
RETRY_SCALE = "0.002"  # Event Grid's 10 s, 30 s, 1 min… become 20 ms, 60 ms, 120 ms…


@dataclass
class Started:
    """A command started for a test (a ``web.core.children.Child``) and the log its output goes
    to, shown when something fails."""

    child: Child
    log: Path
    out: IO[str]

    @property
    def name(self) -> str:
        return self.child.name

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self, kill: bool = False) -> None:
        self.child.stop(kill=kill)
        self.out.close()


def start(name: str, command: list[str], env: dict[str, str], log: Path) -> Started:
    out = open(log, "a")  # noqa: SIM115 (open while the child runs: Started.stop closes it)
    return Started(Child(name, command, env, out), log, out)


def wait_ready(
    url: str, started: Started, timeout: float = 60, ready: Callable[[Any], bool] | None = None
) -> None:
    try:
        wait_for(url, started.child, timeout, ready)
    except ChildFailed as exc:
        raise RuntimeError(f"{exc}\n{started.tail()}") from None


@contextmanager
def running_emulator(
    workdir: Path, env: dict[str, str], config: dict[str, Any], *, nice: int = 0
) -> Iterator[str]:
    """``magictoolbox eventgrid-emulator`` with this config, its handshakes done; yields the
    topic endpoint. ``nice``: at that scheduling priority (Event Grid is Azure's service, on
    machines of its own: a test that times our server may have it yield the CPU)."""
    port = free_port()
    path = workdir / "eventgrid.json"
    path.write_text(json.dumps(config))
    command = cli_command("eventgrid-emulator", "--config", str(path), "--port", str(port))
    if nice:
        command = ["nice", "-n", str(nice), *command]
    emulator = start("emulator", command, env, workdir / "emulator.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/emulator/status", emulator, ready=emulator_settled)
        yield f"http://127.0.0.1:{port}/api/events"
    finally:
        emulator.stop()


@dataclass
class AzureMode:
    web_url: str
    emulator_url: str
    topic_endpoint: str
    functions_url: str
    database_url: str
    azurite: str
    audit: Receiver  # a second subscriber: another system that follows runs
    broken: Receiver  # a subscriber that always fails: retried, then dead-lettered
    env: dict[str, str]
    processes: dict[str, Started] = field(default_factory=dict)
    token: str = ""

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.web_url, headers={"Authorization": f"Token {self.token}"}, timeout=30
        )

    def emulator_status(self) -> dict[str, Any]:
        return httpx.get(f"{self.emulator_url}/emulator/status", timeout=10).json()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes.values())


@contextmanager
def postgres_schema() -> Iterator[str]:
    schema = f"mt_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def extra_subscriptions(audit: Receiver, broken: Receiver) -> list[dict[str, Any]]:
    retry = {"retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}}
    return [
        {
            "name": "audit",
            "endpoint": audit.url,
            "eventDeliverySchema": "CloudEventSchemaV1_0",
            "filter": {"subjectBeginsWith": "/tools/"},
            "maxEventsPerBatch": 10,
            **retry,
        },
        {
            "name": "broken",
            "endpoint": broken.url,
            "eventDeliverySchema": "CloudEventSchemaV1_0",
            "filter": {"subjectBeginsWith": "/tools/image/"},
            "retryPolicy": {"maxDeliveryAttempts": 3, "eventTimeToLiveInMinutes": 1440},
            "deadLetter": True,
        },
    ]


@contextmanager
def azure_mode(workdir: Path, azurite: str) -> Iterator[AzureMode]:
    """``magictoolbox run-azure`` on PostgreSQL and the session's Azurite, with two more
    subscribers: ``audit`` (another system following runs) and ``broken`` (always 500)."""
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_schema())
        audit = stack.enter_context(Receiver())
        broken = stack.enter_context(Receiver(default=500))
        web_port, functions_port, emulator_port = free_port(), free_port(), free_port()
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        env = cli_env(
            DATABASE_URL=database_url,
            BLOB_STORAGE=azurite,
            SECRET_KEY="e2e-secret-key",
            MAGICTOOLBOX_DEPLOYMENT="e2e",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            EVENTGRID_TOPIC_KEY=TOPIC_KEY,
            EVENTGRID_RECEIVER_KEY=RECEIVER_KEY,
            RETRY_BACKOFF_SECONDS="1",
            SWEEP_SCHEDULE="*/2 * * * * *",
            RETENTION_SCHEDULE="0 0 0 1 1 *",
            RELAY_SCHEDULE="*/5 * * * * *",
            API_THROTTLE_USER="100000/min",
            API_THROTTLE_SUBMIT="100000/min",
            WEBHOOKS_ALLOW_LOOPBACK_HTTP="1",  # a user's webhook on 127.0.0.1
        )
        mode = AzureMode(
            web_url=f"http://127.0.0.1:{web_port}",
            emulator_url=emulator_url,
            topic_endpoint=f"{emulator_url}/api/events",
            functions_url=f"http://127.0.0.1:{functions_port}",
            database_url=database_url,
            azurite=azurite,
            audit=audit,
            broken=broken,
            env=env,
        )
        extra = workdir / "subscriptions.json"
        extra.write_text(json.dumps(extra_subscriptions(audit, broken)))
        command = cli_command(
            "run-azure",
            *("--port", str(web_port), "--functions-port", str(functions_port)),
            *("--eventgrid-port", str(emulator_port), "--retry-scale", RETRY_SCALE),
            *("--subscriptions", str(extra)),
        )
        started = start("run-azure", command, env, workdir / "run-azure.log")
        mode.processes["run-azure"] = started
        stack.callback(started.stop)
        # run-azure starts the emulator last, once the rest answers: settled means all is up.
        wait_ready(f"{emulator_url}/emulator/status", started, 90, ready=emulator_settled)
        mode.token = create_user_with_token(env)
        yield mode


def create_user_with_token(env: dict[str, str]) -> str:
    script = (
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "u = get_user_model().objects.create_user('e2e', password='e2e-password');"
        "print(Token.objects.create(user=u).key)"
    )
    made = run_cli("shell", "-c", script, **env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]
