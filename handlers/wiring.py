"""What the Functions need, built once per process from the environment (Azure app settings).

In Azure every setting is an app setting (an environment variable); locally the defaults put
everything under the project's ``var/`` folder, exactly where the web process looks. The web
process and tests hand over their own objects with ``configure`` instead, so one store, one
blob store and one registry serve a whole process.

| variable | default |
|---|---|
| ``EVENTSTORE_URL`` | ``DATABASE_URL`` |
| ``DATABASE_URL`` | ``sqlite:///<project root>/var/magictoolbox.sqlite3`` (read models) |
| ``BLOB_STORAGE`` | ``<project root>/var/blobs``; or an Azure connection string or account URL |
| ``BLOB_SIGNING_KEY`` | ``SECRET_KEY``, else a development key (local blob download links) |
| ``MAGICTOOLBOX_DEPLOYMENT`` | ``local`` (the CloudEvents source ``/magictoolbox/<name>``) |
| ``SWEEP_SCHEDULE`` | ``*/15 * * * * *`` (NCRONTAB: timeouts and retries) |
| ``RETENTION_SCHEDULE`` | ``0 7 * * * *`` (NCRONTAB: expiry of old executions' files) |
| ``RETRY_BACKOFF_SECONDS`` | ``30``: the wait before a second attempt, doubling after each |
| ``EVENTGRID_TOPIC_ENDPOINT`` | unset: no Event Grid (the local host delivers from the feed) |
| ``EVENTGRID_TOPIC_KEY`` | unset: the relay signs in with DefaultAzureCredential |
| ``RELAY_SCHEDULE`` | ``*/10 * * * * *`` (NCRONTAB: the relay's sweep, with a topic) |
| ``WEBHOOKS_SCHEDULE`` | ``*/10 * * * * *`` (NCRONTAB: user webhook deliveries) |
| ``WEBHOOK_RETRY_SCALE`` | ``1``: times the webhook retry schedule and 5-day rule (tests) |
| ``WEBHOOKS_ALLOW_LOOPBACK_HTTP`` | unset: webhooks go to public https URLs only |
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from events.opening import open_store
from events.store import EventStore
from services.blobs import BlobStore, open_blob_store
from services.eventgrid.relay import OutboxRelay, relay_to
from services.executions.service import ExecutionService
from services.tools.registry import ToolRegistry, default_registry
from services.tools.runner import ToolRunner
from services.webhooks.dispatcher import WebhookDispatcher

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEDULES = {
    "SWEEP_SCHEDULE": "*/15 * * * * *",
    "RETENTION_SCHEDULE": "0 7 * * * *",
    "RELAY_SCHEDULE": "*/10 * * * * *",
    "WEBHOOKS_SCHEDULE": "*/10 * * * * *",
}
TRUE = {"1", "true", "yes", "on"}


@dataclass
class Dependencies:
    store: EventStore
    blobs: BlobStore
    registry: ToolRegistry
    database_url: str  # where the read models are (the sweeper's candidates)
    source: str = "/magictoolbox/local"
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    progress_interval: float = 0.25
    retry_backoff: timedelta = timedelta(seconds=30)  # the wait after a first failed attempt
    eventgrid_endpoint: str = ""  # the Event Grid topic the relay publishes to ("" = none)
    eventgrid_key: str = ""
    webhook_retry_scale: float = 1.0  # times the retry schedule (tests compress it)
    webhooks_allow_loopback_http: bool = False  # development and tests: http to 127.0.0.1
    _relay: OutboxRelay | None = field(default=None, init=False, repr=False)
    _dispatcher: WebhookDispatcher | None = field(default=None, init=False, repr=False)

    def service(self) -> ExecutionService:
        return ExecutionService(self.store, source=self.source)

    def runner(self) -> ToolRunner:
        return ToolRunner(
            self.service(),
            self.blobs,
            self.registry,
            worker_id=f"{self.worker_id}:{threading.get_ident()}",
            progress_interval=self.progress_interval,
        )

    def relay(self) -> OutboxRelay | None:
        """The outbox relay to the Event Grid topic, built once (None without a topic)."""
        if self._relay is None and self.eventgrid_endpoint:
            self._relay = relay_to(
                self.store, self.database_url, self.eventgrid_endpoint, self.eventgrid_key
            )
        return self._relay

    def dispatcher(self) -> WebhookDispatcher:
        """The user-webhook delivery worker, built once."""
        if self._dispatcher is None:
            self._dispatcher = WebhookDispatcher(
                self.store,
                self.database_url,
                allow_loopback_http=self.webhooks_allow_loopback_http,
                retry_scale=self.webhook_retry_scale,
            )
        return self._dispatcher


def from_environment(env: dict[str, str] | None = None) -> Dependencies:
    env = dict(os.environ if env is None else env)
    var = PROJECT_ROOT / "var"
    database_url = env.get("DATABASE_URL") or f"sqlite:///{var / 'magictoolbox.sqlite3'}"
    key = env.get("BLOB_SIGNING_KEY") or env.get("SECRET_KEY") or "local-development-blob-key"
    blobs = open_blob_store(env.get("BLOB_STORAGE") or str(var / "blobs"), signing_key=key.encode())
    return Dependencies(
        store=open_store(env.get("EVENTSTORE_URL") or database_url),
        blobs=blobs,
        registry=default_registry(),
        database_url=database_url,
        source=f"/magictoolbox/{env.get('MAGICTOOLBOX_DEPLOYMENT', 'local')}",
        retry_backoff=timedelta(seconds=float(env.get("RETRY_BACKOFF_SECONDS") or 30)),
        eventgrid_endpoint=env.get("EVENTGRID_TOPIC_ENDPOINT", ""),
        eventgrid_key=env.get("EVENTGRID_TOPIC_KEY", ""),
        webhook_retry_scale=float(env.get("WEBHOOK_RETRY_SCALE") or 1.0),
        webhooks_allow_loopback_http=(
            env.get("WEBHOOKS_ALLOW_LOOPBACK_HTTP", "").strip().lower() in TRUE
        ),
    )


def settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """App settings the bindings refer to (``%NAME%``): the environment over the defaults."""
    env = dict(os.environ if env is None else env)
    return {**DEFAULT_SCHEDULES, **{k: v for k, v in env.items() if k in DEFAULT_SCHEDULES}}


_lock = threading.Lock()
_current: Dependencies | None = None


def configure(deps: Dependencies | None) -> None:
    """Use these dependencies in this process (None: build from the environment on next use)."""
    global _current
    with _lock:
        _current = deps


def dependencies() -> Dependencies:
    global _current
    with _lock:
        if _current is None:
            _current = from_environment()
        return _current
