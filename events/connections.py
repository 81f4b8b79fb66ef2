"""Database URLs and what both the store and its neighbours need to connect with them.

``sqlite:///path`` names a file; ``postgresql://…?schema=NAME`` a server and the schema to use
(our ``schema`` parameter is taken out before libpq sees the URL). Writers of one SQLite file in
this process queue on ``writer_lock`` before ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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
