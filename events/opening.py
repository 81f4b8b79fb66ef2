"""Opening an event store by URL: the one place that names the backends."""

from __future__ import annotations

from events.store import EventStore


def open_store(url: str, **options: object) -> EventStore:
    """An event store for a database URL: ``sqlite:///path`` or ``postgresql://…``."""
    if url.startswith("sqlite:"):
        from events.sqlite_store import SQLiteEventStore

        return SQLiteEventStore.from_url(url, **options)  # type: ignore[arg-type]
    if url.startswith(("postgres://", "postgresql://")):
        from events.postgres_store import PostgresEventStore

        return PostgresEventStore(url, **options)  # type: ignore[arg-type]
    raise ValueError(f"unsupported event store URL {url!r} (use sqlite:/// or postgresql://)")
