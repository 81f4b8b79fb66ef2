"""Anchoring the audit trail in a deployment: the key from the settings, the anchorer's wiring.

The key is ``AUDIT_KEY`` (from Key Vault on Azure), else one derived from ``SECRET_KEY``; it is
never written to the database, which is the point: someone who can write the tables but does
not hold the key cannot make anchors that verify (events.anchors). The web process anchors as
the feed advances (web.runtime); the Functions' relay timer catches up behind it.
"""

from __future__ import annotations

import logging

from events.anchors import Anchorer, AnchorKey
from events.store import EventStore
from handlers.bootstrap import Parts
from handlers.settings import Settings

log = logging.getLogger(__name__)


def audit_key(settings: Settings) -> AnchorKey:
    """The anchors' key: ``AUDIT_KEY`` as given, else derived from ``SECRET_KEY`` (so the two
    never sign the same thing with the same bytes)."""
    if settings.AUDIT_KEY:
        return AnchorKey(settings.AUDIT_KEY.encode())
    return AnchorKey.derived_from(settings.secret_key())


def store_database_url(store: EventStore, fallback: str) -> str:
    """The database URL of ``store``'s own tables (the anchors live beside the events)."""
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:":
        return f"sqlite:///{path}"
    url, schema = getattr(store, "url", None), getattr(store, "schema", None)
    if isinstance(url, str) and isinstance(schema, str):
        return f"{url}{'&' if '?' in url else '?'}schema={schema}"
    return fallback


def anchorer(parts: Parts, *, interval: float = 1.0) -> Anchorer:
    """An anchorer of ``parts``' store, signing with the settings' audit key."""
    url = store_database_url(parts.store, parts.settings.eventstore_url)
    return Anchorer(parts.store, url, audit_key(parts.settings), interval=interval)


def anchor(parts: Parts) -> int:
    """Catch the anchors up with the feed once (a timer's job); how many events were anchored.

    A failure is logged, not raised: anchoring that cannot go on is a finding for
    ``audit verify``, and the next run tries again.
    """
    worker = anchorer(parts)
    try:
        anchored = worker.run_once()
    except Exception:
        log.exception("anchoring the audit trail failed")
        return 0
    finally:
        worker.close()
    if anchored:
        position = worker.head.position if worker.head else 0
        log.info("audit anchors: %d events anchored, up to position %d", anchored, position)
    return anchored
