"""The one place that wires dependencies: views and commands ask here for what they use.

Everything is built from settings on first use and shared by the process: the event store, blob
storage, the tool registry, and the Functions' dependencies (``handlers.wiring``), so the web
process and the in-process Functions host use the same objects.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from django.conf import settings

from events.database import Database
from events.opening import open_store
from events.store import EventStore
from handlers import wiring
from services.blobs import BlobStore, open_blob_store
from services.executions.service import ExecutionService
from services.tools.registry import ToolRegistry, default_registry
from services.webhooks.actions import WebhookActions

_lock = threading.RLock()
_event_store: EventStore | None = None
_blob_store: BlobStore | None = None
_local = threading.local()


def event_store() -> EventStore:
    """The process-wide event store for ``settings.EVENTSTORE_URL``, opened on first use."""
    global _event_store
    with _lock:
        if _event_store is None:
            _event_store = open_store(settings.EVENTSTORE_URL)
        return _event_store


def blob_store() -> BlobStore:
    global _blob_store
    with _lock:
        if _blob_store is None:
            _blob_store = open_blob_store(
                settings.BLOB_STORAGE, signing_key=settings.BLOB_SIGNING_KEY.encode()
            )
        return _blob_store


def read_models() -> Database:
    """This thread's connection to the read models (the projections' tables)."""
    db = getattr(_local, "db", None)
    if db is None or db.url != settings.DATABASE_URL:
        db = _local.db = Database(settings.DATABASE_URL)
    return db


def tool_registry() -> ToolRegistry:
    return default_registry()


def execution_service() -> ExecutionService:
    return ExecutionService(event_store(), source=settings.MAGICTOOLBOX_SOURCE)


def functions_dependencies() -> wiring.Dependencies:
    """The Functions' dependencies, built from these settings and handed to ``handlers``."""
    with _lock:
        deps = wiring.Dependencies(
            store=event_store(),
            blobs=blob_store(),
            registry=tool_registry(),
            database_url=settings.DATABASE_URL,
            source=settings.MAGICTOOLBOX_SOURCE,
            eventgrid_endpoint=settings.EVENTGRID_TOPIC_ENDPOINT,
            eventgrid_key=settings.EVENTGRID_TOPIC_KEY,
            webhook_retry_scale=settings.WEBHOOK_RETRY_SCALE,
            webhooks_allow_loopback_http=settings.WEBHOOKS_ALLOW_LOOPBACK_HTTP,
        )
        wiring.configure(deps)
        return deps


def webhooks() -> WebhookActions:
    return WebhookActions(
        read_models,
        tool_registry(),
        allow_loopback_http=settings.WEBHOOKS_ALLOW_LOOPBACK_HTTP,
        secret_overlap=timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS),
    )


def reset() -> None:
    """Close and forget everything built here (tests call it after changing settings)."""
    global _event_store, _blob_store
    with _lock:
        if _event_store is not None:
            _event_store.close()
        _event_store = None
        _blob_store = None
        wiring.configure(None)
