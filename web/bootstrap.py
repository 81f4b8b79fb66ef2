"""The one place that wires dependencies: views and commands ask here for the event store.

Later issues add the command service, blob storage and publishers here, built from settings.
"""

from __future__ import annotations

import threading

from django.conf import settings

from events.store import EventStore, open_store

_lock = threading.Lock()
_event_store: EventStore | None = None


def event_store() -> EventStore:
    """The process-wide event store for ``settings.EVENTSTORE_URL``, opened on first use."""
    global _event_store
    with _lock:
        if _event_store is None:
            _event_store = open_store(settings.EVENTSTORE_URL)
        return _event_store


def reset() -> None:
    """Close and forget everything built here (tests call it after changing settings)."""
    global _event_store
    with _lock:
        if _event_store is not None:
            _event_store.close()
        _event_store = None
