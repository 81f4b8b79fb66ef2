"""What a projection is: a name, the tables it owns (DDL per table-name prefix) and ``apply``.

``apply(db, events, prefix)`` folds a batch of feed events into the tables named ``prefix`` +
table, inside a transaction the caller owns; it must neither commit nor read the clock, so that
applying the feed in any batch sizes, or rebuilding it, gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from events.catalog import EXECUTION_EVENTS, TYPE_PREFIX, catalog
from events.database import Database
from events.envelope import EXECUTION_STREAM_PREFIX, RecordedEvent

LIVE = "proj_"


# The status each event type leads an execution to, as the catalog states it for the decider
# too; Progress changes none.
STATUS_AFTER = {m.name: m.status for m in EXECUTION_EVENTS if m.status is not None}
RETRYING = "retrying"


def status_after(kind: str, data: Mapping[str, Any]) -> str:
    """The status an event leads an execution to, as readers see it: the catalog's, except that
    a failure with its next attempt scheduled is ``retrying``, not ``failed``: it is not over.
    (The decider keeps such an execution ``failed`` until ``Retried``: that is when it may be
    started again.)"""
    if kind == "Failed" and data.get("next_attempt_at") is not None:
        return RETRYING
    return STATUS_AFTER[kind]


@dataclass(frozen=True, slots=True)
class Index:
    name: str  # without prefix
    columns: str  # e.g. "owner, submitted_at DESC, execution_id"


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # without prefix
    columns: str  # the CREATE TABLE body; may use {ts}, {bool}, {float}, {bigint}
    indexes: tuple[Index, ...] = ()


class Projection(Protocol):
    name: str
    tables: tuple[Table, ...]
    # The event types it reads, or None for every event in the feed.
    types: tuple[str, ...] | None

    def apply(self, db: Database, events: Sequence[RecordedEvent], prefix: str) -> None: ...


def create_tables(db: Database, projection: Projection, prefix: str = LIVE) -> None:
    """Create the projection's tables and indexes that are missing, and add the columns a table
    made by an older version lacks (they must be nullable: their rows get NULL until a rebuild)."""
    for table in projection.tables:
        name = prefix + table.name
        db.execute(db.ddl(f"CREATE TABLE IF NOT EXISTS {name} ({table.columns})"))
        present = set(live_columns(db, name))
        for column, definition in column_definitions(table.columns).items():
            if column not in present:
                # IF NOT EXISTS: two PostgreSQL setups may both have seen the column missing.
                guard = "IF NOT EXISTS " if db.dialect == "postgresql" else ""
                db.execute(db.ddl(f"ALTER TABLE {name} ADD COLUMN {guard}{definition}"))
        for index in table.indexes:
            db.execute(
                f"CREATE INDEX IF NOT EXISTS {prefix}{index.name} "
                f"ON {prefix}{table.name} ({index.columns})"
            )


_CONSTRAINTS = frozenset({"PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"})


def column_definitions(body: str) -> dict[str, str]:
    """The column definitions of a CREATE TABLE body by column name (table constraints left
    out), e.g. ``{"status": "status TEXT NOT NULL", …}``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(body):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    found = {}
    for part in parts:
        definition = " ".join(part.split())
        if definition and definition.split()[0].upper() not in _CONSTRAINTS:
            found[definition.split()[0].lower()] = definition
    return found


def live_columns(db: Database, table: str) -> list[str]:
    """The columns the table has in the database (lower case)."""
    if db.dialect == "sqlite":
        return [row[1].lower() for row in db.execute(f"PRAGMA table_info({table})")]
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return [row[0].lower() for row in rows]


def drop_tables(db: Database, projection: Projection, prefix: str) -> None:
    for table in projection.tables:
        db.execute(f"DROP TABLE IF EXISTS {prefix}{table.name}")


class ExecutionEvent(NamedTuple):
    execution_id: str
    kind: str  # the short type: Submitted, Processing, …
    data: dict[str, Any]  # the payload in the current schema version (upcast, not validated)
    event: RecordedEvent


def execution_events(events: Sequence[RecordedEvent]) -> Iterator[ExecutionEvent]:
    """The execution events of a batch, decoded once. Payloads were validated when appended,
    so only upcasting is needed here; that keeps a rebuild fast."""
    for event in events:
        if not (
            event.type.startswith(TYPE_PREFIX) and event.stream.startswith(EXECUTION_STREAM_PREFIX)
        ):
            continue
        data = catalog.upcast(event.type, event.schema_version, event.data)
        yield ExecutionEvent(
            event.stream[len(EXECUTION_STREAM_PREFIX) :],
            event.type[len(TYPE_PREFIX) :],
            data,
            event,
        )


def load_rows(
    db: Database, table: str, columns: Sequence[str], keys: Sequence[str]
) -> dict[str, list[Any]]:
    """Rows of ``table`` by their first column (the key), as mutable lists, for ``keys``."""
    rows = db.select_in(f"SELECT {', '.join(columns)} FROM {table} WHERE {{in_}}", columns[0], keys)
    return {row[0]: list(row) for row in rows}
