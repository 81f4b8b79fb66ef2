"""Database URLs and what both the store and its neighbours need to connect with them.

``sqlite:///path`` names a file; ``postgresql://…?schema=NAME`` a server and the schema to use
(our ``schema`` parameter is taken out before libpq sees the URL). Writers of one SQLite file in
this process queue on ``writer_lock`` before ``BEGIN IMMEDIATE``.

Every connection opened in this process, whoever opens it (the event store, the read models,
checkpoints, leases, dead letters), waits a bounded time: ``timeouts()`` says how long, and
``bootstrap`` sets it once from the settings (``set_timeouts``) so that no constructor needs to
pass it along. A statement past its time is cancelled by the server (PostgreSQL's
``statement_timeout``); on SQLite, where a local read cannot hang on a network, the bound is the
wait for another writer's lock. ``unavailable`` tells such a failure from a bug.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Timeouts:
    """How long a database connection may take to open, and one statement to run (on SQLite:
    to wait for another connection's lock)."""

    connect: int = 5
    statement: float = 30.0

    def postgres(self, *options: str) -> dict[str, Any]:
        """``psycopg.connect`` keyword arguments: libpq's ``connect_timeout``, and ``options``
        (each a ``-c name=value``) with the ``statement_timeout`` added."""
        ms = max(1, round(self.statement * 1000))
        return {
            "connect_timeout": self.connect,
            "options": " ".join((*options, f"-c statement_timeout={ms}")),
        }


_timeouts = Timeouts()


def timeouts() -> Timeouts:
    """This process's database timeouts (the settings' once ``bootstrap`` ran)."""
    return _timeouts


def set_timeouts(value: Timeouts) -> None:
    """Use ``value`` for every connection opened from now on in this process."""
    global _timeouts
    _timeouts = value


def unavailable(exc: BaseException) -> bool:
    """Is ``exc`` the database being out of reach or too slow (a timeout, a lock held past the
    wait, a refused or broken connection), rather than a mistake in a statement?"""
    if isinstance(exc, sqlite3.OperationalError):  # which is also "no such table": by message
        message = str(exc)
        return "locked" in message or "busy" in message or "interrupted" in message
    # psycopg's OperationalError: connecting failed or timed out, the statement was cancelled
    # (statement_timeout), too many clients, the server shutting down…; never bad SQL.
    return isinstance(exc, psycopg.OperationalError)


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    return url.removeprefix("sqlite:///").removeprefix("sqlite://")


def split_url(url: str) -> tuple[str, str]:
    """(libpq URL, schema): our ``schema`` query parameter is taken out of the URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return urlunsplit(parts._replace(query=rest)), schema


def redacted(url: str) -> str:
    """The URL without its password, fit for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


_writers: dict[str, threading.RLock] = {}
_writers_lock = threading.Lock()


def writer_lock(path: str | Path) -> threading.RLock:
    """The lock that this process's writers of one SQLite file take before ``BEGIN IMMEDIATE``.

    SQLite lets one writer in and makes the others sleep and retry in no order, which gives
    appends a long tail under load; queueing on a lock first hands the file over in turn.
    """
    key = os.path.realpath(path) if str(path) != ":memory:" else f":memory:{id(path)}"
    with _writers_lock:
        lock = _writers.get(key)
        if lock is None:
            lock = _writers[key] = threading.RLock()
        return lock
