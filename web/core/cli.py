"""What the operations commands share: the ``--store`` option, opening the store, event lines."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import orjson
import psycopg
from django.core.management.base import CommandError

from events.connections import redacted
from events.envelope import RecordedEvent
from events.errors import EventStoreError
from events.opening import open_store
from events.store import EventStore
from handlers.bootstrap import Parts, bootstrap
from web.parts import parts

SUMMARY_WIDTH = 80


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="event store URL (sqlite:///path or postgresql://…); default: EVENTSTORE_URL",
    )


@contextmanager
def opened_store(url: str | None) -> Iterator[EventStore]:
    """The store at ``url`` (closed afterwards) or the configured one; store failures become
    ``CommandError`` so that a user sees one line, not a traceback."""
    shown = redacted(url or parts().settings.eventstore_url)
    try:
        if url:
            store = open_store(url)
            try:
                yield store
            finally:
                store.close()
        else:
            yield parts().store
    except (EventStoreError, ValueError) as exc:
        raise CommandError(f"{shown}: {exc}", returncode=1) from exc
    except (sqlite3.Error, psycopg.Error) as exc:
        # Most likely the schema is missing; migrate installs it.
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(
            f"cannot read the event store at {shown}: {detail} "
            "(has `magictoolbox migrate` run against it?)",
            returncode=1,
        ) from exc


@contextmanager
def command_parts(store_url: str | None, db_url: str | None = None) -> Iterator[Parts]:
    """What a command works with: the configured parts, or the same with another event store
    (``--store``) or read-model database (``--db``)."""
    with opened_store(store_url) as store:
        configured = parts()
        if store is configured.store and not db_url:
            yield configured
            return
        settings = configured.settings.but(DATABASE_URL=db_url) if db_url else configured.settings
        yield bootstrap(settings, store=store, blobs=configured.blobs, registry=configured.registry)


def iso_time(event: RecordedEvent) -> str:
    return event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloudevent_line(event: RecordedEvent) -> str:
    return orjson.dumps(event.to_cloudevent()).decode()


def data_summary(data: dict[str, Any], width: int = SUMMARY_WIDTH) -> str:
    """``key=value`` pairs of the payload on one line, cut to ``width`` characters."""
    text = " ".join(f"{key}={_short(value)}" for key, value in data.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def checkpoint_lines(rows: list[tuple[str, int, int, str | None, Any]]) -> list[str]:
    """A table of feed readers: (name, checkpoint, head, last error, failed at) each."""
    lines = [f"{'reader':<12} {'checkpoint':>10} {'head':>10} {'lag':>8}  last error"]
    for name, position, head, error, failed_at in rows:
        shown = "-"
        if error:
            shown = f"{failed_at:%Y-%m-%d %H:%M:%S} {error.splitlines()[-1]}"
        lag = max(head - position, 0)
        lines.append(f"{name:<12} {position:>10} {head:>10} {lag:>8}  {shown}")
    return lines
