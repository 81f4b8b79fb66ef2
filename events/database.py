"""Tables beside the event store (read models, checkpoints, webhooks, dead letters): one
connection from a URL, on SQLite or PostgreSQL, with the same SQL for both.

Statements use ``?`` placeholders and SQL both dialects accept; ``{ts}``, ``{bool}``, ``{float}``
and ``{bigint}`` in DDL become each dialect's type. A ``Database`` is used by one thread
at a time: on SQLite it is one connection; on PostgreSQL each statement (or ``transaction()``)
borrows one from the process's pool (``events.pools``), so a process's connections stay
bounded however many threads hold a ``Database``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from psycopg_pool import ConnectionPool

from events import pools
from events.connections import split_url, sqlite_path, timeouts, writer_lock

Dialect = Literal["sqlite", "postgresql"]

# SQLite picks a converter by the first word of a column's declared type; these names keep their
# affinity (TEXT, INTEGER) and cannot collide with anybody else's converters.
_SQLITE_TS = "TEXT_PROJ_TIMESTAMP"
_SQLITE_BOOL = "INTEGER_PROJ_BOOL"
_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"ts": _SQLITE_TS, "bool": _SQLITE_BOOL, "float": "REAL", "bigint": "INTEGER"},
    "postgresql": {
        "ts": "timestamptz",
        "bool": "boolean",
        "float": "double precision",
        "bigint": "bigint",
    },
}
sqlite3.register_converter(_SQLITE_TS, lambda b: datetime.fromisoformat(b.decode()))
sqlite3.register_converter(_SQLITE_BOOL, lambda b: b != b"0")
# IN lists on SQLite are chunked under its bound-variable limit.
_SQLITE_IN_CHUNK = 900


def dialect_of(url: str) -> Dialect:
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql"
    raise ValueError(f"unsupported read-model URL {url!r} (use sqlite:/// or postgresql://)")


class Database:
    """One connection to the read-model database, opened on first use, reopened when broken."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Dialect = dialect_of(url)
        if self.dialect == "postgresql":
            self._pg_url, self.schema = split_url(url)
        else:
            self.path = sqlite_path(url)
            self.schema = "main"
        self._conn: Any = None  # SQLite: this Database's connection; PostgreSQL: a borrowed one
        self._pool: ConnectionPool | None = None  # PostgreSQL: the process's, for these options
        self._in_transaction = False
        self._types: dict[str, dict[str, str]] = {}  # PostgreSQL column types, by table

    # -- connection ----------------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        """SQLite's connection (autocommit outside ``transaction()``); PostgreSQL statements
        borrow one instead (``_using``)."""
        if self._conn is None:
            self._conn = self._connect_sqlite()
        return self._conn

    @contextmanager
    def _using(self) -> Iterator[Any]:
        """A connection for one statement: SQLite's own; on PostgreSQL the transaction's, or
        one borrowed from the process's pool (events.pools) and given back after it."""
        if self.dialect == "sqlite":
            yield self.conn
        elif self._conn is not None:
            yield self._conn
        else:
            with self._shared_pool().connection() as conn:
                yield conn

    def _shared_pool(self) -> ConnectionPool:
        if self._pool is None:
            # synchronous_commit off, for the same reason as SQLite's NORMAL below: a crash may
            # lose the last few commits, rows and checkpoint together, which the projector
            # re-applies.
            options = (f"-c search_path={self.schema}", "-c synchronous_commit=off")
            pool = pools.acquire(self._pg_url, **timeouts().postgres(*options))
            with pool.connection() as conn:  # once per Database: a test may drop a schema
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            self._pool = pool
        return self._pool

    def _connect_sqlite(self) -> Any:
        limits = timeouts()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=limits.statement,
            detect_types=sqlite3.PARSE_DECLTYPES,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode may lose the last commits on power loss but never tears one:
        # rows and checkpoint go together, and read models can always be rebuilt.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={round(limits.statement * 1000)}")
        return conn

    def close(self) -> None:
        if self.dialect == "sqlite":
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            pools.release(pool)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- statements ----------------------------------------------------------------------------

    def sql(self, statement: str) -> str:
        """``statement`` in this dialect: ``?`` placeholders become ``%s`` on PostgreSQL."""
        if self.dialect == "postgresql":
            return statement.replace("?", "%s")
        return statement

    def ddl(self, template: str) -> str:
        """A DDL template with ``{ts}``, ``{bool}``, ``{float}``, ``{bigint}`` filled in."""
        return template.format(**_TYPES[self.dialect])

    def _params(self, params: Sequence[Any]) -> Sequence[Any]:
        # Times go to SQLite as UTC ISO text, so that text order is time order.
        if self.dialect == "sqlite":
            return tuple(
                v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in params
            )
        return params

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns (an empty list for statements without)."""
        with self._using() as conn:
            cur = conn.execute(self.sql(statement), self._params(params))
            if cur.description is None:
                return []
            return list(cur.fetchall())

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [self._params(r) for r in rows] if self.dialect == "sqlite" else list(rows)
        if not rows:
            return
        if self.dialect == "sqlite":
            self.conn.executemany(statement, rows)
        else:
            with self._using() as conn, conn.cursor() as cur:
                cur.executemany(self.sql(statement), rows)

    def upsert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace whole rows keyed by the first column (keys must not repeat).

        On PostgreSQL the rows travel as one array per column and are inserted by one statement
        (``unnest``); one statement per row spent most of an incremental pass.
        """
        if not rows:
            return
        key, rest = columns[0], columns[1:]
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in rest
        )
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            self.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}", rows
            )
            return
        types = self._column_types(table)
        arrays = ", ".join(f"%b::{types[c]}[]" for c in columns)  # binary: quicker to build
        self.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {conflict}",
            [list(column) for column in zip(*rows, strict=True)],
        )

    def _column_types(self, table: str) -> dict[str, str]:
        types = self._types.get(table)
        if types is None:
            rows = self.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = ?::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (table,),
            )
            types = self._types[table] = dict(rows)
        return types

    def select_in(
        self, statement: str, column: str, keys: Sequence[Any], params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of ``statement`` (``… WHERE {in}``) whose ``column`` is one of ``keys``."""
        if not keys:
            return []
        if self.dialect == "postgresql":
            return self.execute(statement.format(in_=f"{column} = ANY(?)"), (*params, list(keys)))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), _SQLITE_IN_CHUNK):
            chunk = keys[start : start + _SQLITE_IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows += self.execute(statement.format(in_=f"{column} IN ({marks})"), (*params, *chunk))
        return rows

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction (not nestable): committed on success, rolled back on error.
        On PostgreSQL it holds one borrowed connection until it ends."""
        if self._in_transaction:
            raise RuntimeError("Database.transaction() does not nest")
        self._in_transaction = True
        try:
            if self.dialect == "sqlite":
                conn = self.conn
                # IMMEDIATE: take the write lock now, so two projectors serialise at BEGIN; the
                # process's lock first, so this process's writers take turns without sleeping.
                with writer_lock(self.path):
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            else:
                # A broken connection is the pool's to drop when it comes back.
                with self._shared_pool().connection() as conn, conn.transaction():
                    self._conn = conn
                    try:
                        yield self
                    finally:
                        self._conn = None
        finally:
            self._in_transaction = False
