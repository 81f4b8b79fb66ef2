"""The composition root: ``bootstrap(settings, **overrides)`` builds what a process works with.

The web, the Functions app, the commands and the tests all get their parts here, built from one
``Settings``; a test hands in its own store, blobs or registry instead of resetting anything.
Parts that cost something to build (the relay, the webhook dispatcher) are made on first use,
once per ``Parts``.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property

from events.connections import Timeouts, set_timeouts
from events.database import Database
from events.following import Backoff
from events.opening import open_store
from events.pools import PoolLimits, set_pool_limits
from events.store import EventStore
from handlers.deadletters import DeadLetterStore
from handlers.settings import Settings
from projections.projector import OnApplied, Projector
from services.blobs import BlobStore, open_blob_store
from services.eventgrid.relay import OutboxRelay, relay_to
from services.executions.actions import ExecutionActions
from services.executions.runner import ToolRunner
from services.executions.service import ExecutionService
from services.tools.registry import ToolRegistry, default_registry
from services.webhooks.actions import WebhookActions
from services.webhooks.dispatcher import WebhookDispatcher
from services.workers.leases import Heartbeat
from services.workers.pool import WorkerPool


class Parts:
    """Everything one deployment's process works with, wired from its settings."""

    def __init__(
        self,
        settings: Settings,
        store: EventStore,
        blobs: BlobStore,
        registry: ToolRegistry,
        *,
        worker_id: str,
        progress_interval: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.registry = registry
        self.worker_id = worker_id  # this process's: its lease, and its workers' ids begin so
        self.progress_interval = progress_interval
        self.service = ExecutionService(store, source=settings.source, clock=clock)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._relay: OutboxRelay | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._pool: WorkerPool | None = None
        self._heartbeat: Heartbeat | None = None

    @property
    def read_models_url(self) -> str:
        """Where the read models (and every other table beside the events) live."""
        return self.settings.DATABASE_URL

    def read_models(self) -> Database:
        """This thread's connection to the read models' database."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = Database(self.read_models_url)
        return db

    def pool(self) -> WorkerPool:
        """This process's tool workers, made on first use with the lease that vouches for them
        (taken before any run is recorded under it)."""
        with self._lock:
            if self._pool is None:
                config = self.settings
                self._heartbeat = Heartbeat(
                    self.read_models_url, self.worker_id, config.LEASE_SECONDS
                ).start()
                size = config.TOOL_WORKERS or os.cpu_count() or 1
                # Sync requests waiting for a worker hold a web thread each; what refuses them
                # is mostly the expected wait (past half their time limit), so quick tools
                # queue for milliseconds and a slow tool's requests hold few threads.
                queue = config.TOOL_QUEUE
                if queue is None:
                    queue = max(1, config.WEB_THREADS - size)
                self._pool = WorkerPool(
                    size,
                    process_id=self.worker_id,
                    per_owner=config.TOOL_WORKERS_PER_OWNER,
                    queue_limit=queue,
                    max_runs=config.TOOL_WORKER_MAX_RUNS,
                    max_rss=config.TOOL_WORKER_MAX_RSS_MB * 1024 * 1024,
                    nice=config.TOOL_WORKER_NICE,
                )
            return self._pool

    @property
    def retry_backoff(self) -> Backoff:
        return Backoff(first=self.settings.RETRY_BACKOFF_SECONDS, factor=2.0, cap=3600.0)

    def runner(self) -> ToolRunner:
        """A tool runner over this process's pool of tool workers."""
        return ToolRunner(
            self.service,
            self.blobs,
            self.registry,
            pool=self.pool(),
            lease_seconds=self.settings.LEASE_SECONDS,
            retry_backoff=self.retry_backoff,
            progress_interval=self.progress_interval,
        )

    @cached_property
    def executions(self) -> ExecutionActions:
        return ExecutionActions(self.service, self.registry, self.blobs, self.runner)

    @cached_property
    def webhooks(self) -> WebhookActions:
        return WebhookActions(
            self.read_models,
            self.registry,
            allow_loopback_http=self.settings.WEBHOOKS_ALLOW_LOOPBACK_HTTP,
            secret_overlap=timedelta(hours=self.settings.WEBHOOK_SECRET_OVERLAP_HOURS),
            per_user=self.settings.WEBHOOKS_PER_USER,
        )

    def projector(self, on_applied: OnApplied | None = None) -> Projector:
        return Projector(self.store, self.read_models_url, on_applied=on_applied)

    def deadletters(self) -> DeadLetterStore:
        return DeadLetterStore(self.read_models_url)

    def relay(self) -> OutboxRelay | None:
        """The outbox relay to the Event Grid topic, built once (None without a topic)."""
        endpoint = self.settings.EVENTGRID_TOPIC_ENDPOINT
        with self._lock:
            if self._relay is None and endpoint:
                key = self.settings.EVENTGRID_TOPIC_KEY
                self._relay = relay_to(self.store, self.read_models_url, endpoint, key)
            return self._relay

    def dispatcher(self) -> WebhookDispatcher:
        """The user-webhook delivery worker, built once."""
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = WebhookDispatcher(
                    self.store,
                    self.read_models_url,
                    allow_loopback_http=self.settings.WEBHOOKS_ALLOW_LOOPBACK_HTTP,
                    retry_scale=self.settings.WEBHOOK_RETRY_SCALE,
                    retention=timedelta(days=self.settings.WEBHOOK_MESSAGE_RETENTION_DAYS),
                )
            return self._dispatcher

    def stop_workers(self) -> None:
        """Stop the tool workers (a run still going is lost and re-queued) and give up the lease."""
        with self._lock:
            pool, heartbeat = self._pool, self._heartbeat
            self._pool = self._heartbeat = None
        if pool is not None:
            pool.close()
        if heartbeat is not None:
            heartbeat.stop()

    def close(self) -> None:
        """Close what was opened here (a store handed in is the caller's to close)."""
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._relay is not None:
            self._relay.close()
        self.stop_workers()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()


def bootstrap(
    settings: Settings | None = None,
    *,
    store: EventStore | None = None,
    blobs: BlobStore | None = None,
    registry: ToolRegistry | None = None,
    worker_id: str | None = None,
    progress_interval: float = 0.25,
    clock: Callable[[], datetime] | None = None,
) -> Parts:
    """The parts of a process for ``settings`` (read from the environment when None, refusing a
    bad value with ``SettingsError``); any part given here is used instead of the one the
    settings name."""
    settings = settings or Settings.from_env()
    # Every database connection of this process, whoever opens it, waits this long at most.
    set_timeouts(
        Timeouts(
            connect=settings.DB_CONNECT_TIMEOUT_SECONDS,
            statement=settings.DB_STATEMENT_TIMEOUT_SECONDS,
        )
    )
    # ...and borrows from a pool of at most DB_POOL_SIZE, waiting for one as long as it would
    # for a new connection.
    set_pool_limits(PoolLimits(size=settings.DB_POOL_SIZE))
    if store is None:
        store = open_store(settings.eventstore_url)
    if blobs is None:
        signing = settings.blob_signing_key().encode()
        blobs = open_blob_store(
            settings.BLOB_STORAGE, signing_key=signing, timeout=settings.STORAGE_TIMEOUT_SECONDS
        )
    return Parts(
        settings,
        store,
        blobs,
        registry if registry is not None else default_registry(settings.TOOL_MODULES),
        worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}",
        progress_interval=progress_interval,
        clock=clock or (lambda: datetime.now(UTC)),
    )
