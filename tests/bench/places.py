"""Throwaway places to benchmark in: fresh PostgreSQL schemas and SQLite files, removed afterwards.

Every run creates its own ``bench_<random>_<part>`` schemas and drops them (CASCADE) on the way out,
error or not, so runs never see each other's rows.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg

from events.opening import open_store
from events.store import EventStore


class PostgresSchemas:
    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"bench_{secrets.token_hex(4)}"
        self.created: list[str] = []

    def new(self, name: str) -> str:
        schema = f"{self.prefix}_{name}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self.created.append(schema)
        return schema

    def open_store(self, name: str) -> EventStore:
        schema = self.new(name)
        separator = "&" if "?" in self.url else "?"
        store = open_store(f"{self.url}{separator}schema={schema}")
        store.setup()
        return store

    def drop_all(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while self.created:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.created.pop()}" CASCADE')

    def __enter__(self) -> PostgresSchemas:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drop_all()


class SQLiteFiles:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mt-bench-")
        self.root = Path(self._dir.name)

    def path(self, name: str) -> str:
        return str(self.root / f"{name}.sqlite3")

    def open_store(self, name: str) -> EventStore:
        store = open_store(f"sqlite:///{self.path(name)}")
        store.setup()
        return store

    def __enter__(self) -> SQLiteFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._dir.cleanup()
