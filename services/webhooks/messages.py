"""What is owed to webhook endpoints: messages made from the feed, leased to senders, and the
log of every attempt.

``fan_out`` turns a batch of events into one message per (matching endpoint, event), in the same
transaction as the ``webhooks`` checkpoint, so a crash never makes a message twice or skips one.
A message is ``pending`` until ``delivered``, or ``failed`` after its last attempt (or when its
endpoint is disabled). Senders ``claim`` due messages by pushing their next attempt past a lease,
so two senders never send one attempt twice and a sender that dies leaves them due again.
``sweep`` deletes what is past retention (``WEBHOOK_MESSAGE_RETENTION_DAYS``), with its log.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from events import checkpoints
from events.database import Database
from events.envelope import RecordedEvent
from services.webhooks.endpoints import DELIVERED, FAILED, PENDING, Endpoint, endpoint_from_row
from services.webhooks.tables import (
    ATTEMPT_COLUMNS,
    ATTEMPTS,
    CHECKPOINT,
    ENDPOINT_COLUMNS,
    ENDPOINTS,
    MESSAGE_COLUMNS,
    MESSAGES,
    OWNERS,
)

SUBMITTED = "MagicToolbox.Execution.Submitted"
EXCERPT = 500


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    endpoint_id: str
    event_id: str
    position: int
    event_type: str
    body: str  # the CloudEvent JSON, exactly as sent
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    id: str
    message_id: str
    endpoint_id: str
    attempt: int
    at: datetime
    status: int | None
    ok: bool
    latency_ms: float
    response: str
    error: str | None


# -- fan-out: the feed becomes messages ----------------------------------------


def _tool_and_execution(subject: str) -> tuple[str, str] | None:
    parts = subject.strip("/").split("/")
    if len(parts) == 5 and parts[0] == "tools" and parts[3] == "executions":
        return parts[2], parts[4]
    return None


def fan_out(db: Database, events: Sequence[RecordedEvent], position: int) -> int | None:
    """Messages for ``events`` (read after ``position``), and the checkpoint moved past them, in
    one transaction. Returns the messages made, or None when another worker moved the
    checkpoint first (nothing was written: read again from the new checkpoint)."""
    if not events:
        return 0
    now = datetime.now(UTC)
    made = 0
    with db.transaction():
        if checkpoints.locked_position(db, CHECKPOINT) != position:
            return None
        by_owner: dict[str, list[Endpoint]] = {}
        for row in db.execute(
            f"SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE enabled = ?", (True,)
        ):
            endpoint = endpoint_from_row(row)
            by_owner.setdefault(endpoint.owner, []).append(endpoint)
        owners: dict[str, str] = {}
        new_owners: list[tuple[str, str]] = []
        messages: list[tuple[Any, ...]] = []
        for event in events:
            found = _tool_and_execution(event.subject)
            if found is None:
                continue
            tool, execution_id = found
            if event.type == SUBMITTED:
                owner = str(event.data.get("owner", ""))
                owners[execution_id] = owner
                new_owners.append((execution_id, owner))
            if not by_owner:
                continue
            owner = owners.get(execution_id) or _owner(db, execution_id, owners)
            body = ""  # the CloudEvent JSON, made once for all the endpoints that want it
            for endpoint in by_owner.get(owner or "", ()):
                if endpoint.wants(event.type, tool):
                    body = body or orjson.dumps(event.to_cloudevent()).decode()
                    messages.append(
                        (str(uuid.uuid4()), endpoint.id, str(event.id), event.position,
                         event.type, body, PENDING, 0, now, now, now)
                    )  # fmt: skip
        if new_owners:
            db.executemany(
                f"INSERT INTO {OWNERS} (execution_id, owner) VALUES (?, ?) "
                "ON CONFLICT (execution_id) DO NOTHING",
                new_owners,
            )
        if messages:
            db.executemany(
                f"INSERT INTO {MESSAGES} ({MESSAGE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                messages,
            )
            made = len(messages)
        checkpoints.write(db, CHECKPOINT, events[-1].position)
    return made


def _owner(db: Database, execution_id: str, cache: dict[str, str]) -> str | None:
    rows = db.execute(f"SELECT owner FROM {OWNERS} WHERE execution_id = ?", (execution_id,))
    if rows:
        cache[execution_id] = rows[0][0]
        return rows[0][0]
    return None


def checkpoint(db: Database) -> int:
    stored = checkpoints.read_all(db).get(CHECKPOINT)
    return stored.position if stored else 0


# -- the queue ----------------------------------------


def due_endpoints(db: Database, now: datetime) -> list[tuple[str, int]]:
    """Endpoints with messages due now, and how many each."""
    rows = db.execute(
        f"SELECT endpoint_id, COUNT(*) FROM {MESSAGES} WHERE status = ? AND next_attempt_at <= ? "
        "GROUP BY endpoint_id",
        (PENDING, now),
    )
    return [(row[0], row[1]) for row in rows]


def next_due(db: Database) -> datetime | None:
    """When the earliest pending message is due (leased ones: when their lease ends)."""
    rows = db.execute(
        f"SELECT next_attempt_at FROM {MESSAGES} WHERE status = ? AND next_attempt_at IS NOT NULL "
        "ORDER BY next_attempt_at LIMIT 1",
        (PENDING,),
    )
    return rows[0][0] if rows else None


def fail_pending(db: Database, endpoint_id: str, now: datetime | None = None) -> int:
    """Give up the pending messages of an endpoint that is off (its owner paused it, or an
    attempt in flight when it was disabled came back to ask for a retry)."""
    now = now or datetime.now(UTC)
    with db.transaction():
        rows = db.execute(
            f"UPDATE {MESSAGES} SET status = ?, next_attempt_at = NULL, updated_at = ? "
            "WHERE endpoint_id = ? AND status = ? RETURNING id",
            (FAILED, now, endpoint_id, PENDING),
        )
    return len(rows)


def claim(
    db: Database, endpoint_id: str, now: datetime, limit: int, lease: timedelta
) -> list[Message]:
    """Up to ``limit`` of the endpoint's due messages, oldest first, leased to the caller: their
    next attempt moves to ``now + lease``, so no other worker takes them meanwhile, and a worker
    that dies leaves them due again when the lease ends. One statement (one round trip):
    PostgreSQL's SKIP LOCKED lets two claimers take different messages at once."""
    lock = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
    statement = (
        f"UPDATE {MESSAGES} SET next_attempt_at = ? WHERE id IN (SELECT id FROM {MESSAGES} "
        "WHERE endpoint_id = ? AND status = ? AND next_attempt_at <= ? "
        f"ORDER BY position LIMIT ?{lock}) RETURNING {MESSAGE_COLUMNS}"
    )
    params = (now + lease, endpoint_id, PENDING, now, limit)
    if db.dialect == "sqlite":
        with db.transaction():  # the process's writer lock, as every SQLite write here
            rows = db.execute(statement, params)
    else:
        rows = db.execute(statement, params)
    return sorted((Message(*row) for row in rows), key=lambda m: m.position)


def release(db: Database, message_ids: Sequence[str], now: datetime | None = None) -> None:
    """Give claimed messages back unsent (a worker stopping): due again at once, not when the
    lease ends."""
    db.select_in(
        f"UPDATE {MESSAGES} SET next_attempt_at = ? WHERE status = ? AND {{in_}} RETURNING id",
        "id",
        list(message_ids),
        (now or datetime.now(UTC), PENDING),
    )


def record_attempt(
    db: Database,
    message: Message,
    *,
    status: int | None,
    ok: bool,
    latency_ms: float,
    response: str,
    error: str | None,
    next_attempt_at: datetime | None,
    now: datetime | None = None,
) -> str:
    """Log one attempt and move the message on: delivered (ok), due again at
    ``next_attempt_at``, or failed (not ok and no next attempt). Returns the new status."""
    now = now or datetime.now(UTC)
    attempt = message.attempts + 1
    new_status = DELIVERED if ok else (PENDING if next_attempt_at else FAILED)
    with db.transaction():
        db.execute(
            f"INSERT INTO {ATTEMPTS} ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                message.id,
                message.endpoint_id,
                attempt,
                now,
                status,
                ok,
                latency_ms,
                response[:EXCERPT],
                error,
            ),
        )
        db.execute(
            f"UPDATE {MESSAGES} SET status = ?, attempts = ?, next_attempt_at = ?, "
            "updated_at = ? WHERE id = ?",
            (new_status, attempt, next_attempt_at if not ok else None, now, message.id),
        )
        if ok:
            db.execute(
                f"UPDATE {ENDPOINTS} SET failing_since = NULL WHERE id = ? "
                "AND failing_since IS NOT NULL",
                (message.endpoint_id,),
            )
        else:
            db.execute(
                f"UPDATE {ENDPOINTS} SET failing_since = ? WHERE id = ? AND failing_since IS NULL",
                (now, message.endpoint_id),
            )
    return new_status


def record_delivered(
    db: Database, delivered: Sequence[tuple[Message, int, float, str, datetime]]
) -> None:
    """``record_attempt`` for many successful attempts at once (message, HTTP status, latency,
    response excerpt, when): one transaction, the statements batched. Delivery runs at the
    pace of the database's round trips otherwise."""
    if not delivered:
        return
    with db.transaction():
        db.executemany(
            f"INSERT INTO {ATTEMPTS} ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (str(uuid.uuid4()), m.id, m.endpoint_id, m.attempts + 1, at, status, True,
                 latency, response[:EXCERPT], None)
                for m, status, latency, response, at in delivered
            ],
        )  # fmt: skip
        db.executemany(
            f"UPDATE {MESSAGES} SET status = ?, attempts = ?, next_attempt_at = NULL, "
            "updated_at = ? WHERE id = ?",
            [(DELIVERED, m.attempts + 1, at, m.id) for m, _, _, _, at in delivered],
        )
        endpoints = sorted({m.endpoint_id for m, *_ in delivered})
        db.select_in(
            f"UPDATE {ENDPOINTS} SET failing_since = NULL WHERE failing_since IS NOT NULL "
            "AND {in_} RETURNING id",
            "id",
            endpoints,
        )


# -- the delivery log, redelivery and recovery --------------------


def messages(
    db: Database, endpoint_id: str, *, status: str | None = None, limit: int = 50
) -> list[Message]:
    where = " AND status = ?" if status else ""
    params: tuple[Any, ...] = (endpoint_id, status) if status else (endpoint_id,)
    rows = db.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGES} WHERE endpoint_id = ?{where} "
        "ORDER BY position DESC LIMIT ?",
        (*params, limit),
    )
    return [Message(*row) for row in rows]


def get_message(db: Database, message_id: str) -> Message | None:
    rows = db.execute(f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGES} WHERE id = ?", (message_id,))
    return Message(*rows[0]) if rows else None


def attempts(
    db: Database, endpoint_id: str, *, message_id: str | None = None, limit: int = 100
) -> list[Attempt]:
    where, params = "endpoint_id = ?", [endpoint_id]
    if message_id:
        where += " AND message_id = ?"
        params.append(message_id)
    rows = db.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM {ATTEMPTS} WHERE {where} ORDER BY at DESC LIMIT ?",
        (*params, limit),
    )
    return [Attempt(*row[:6], bool(row[6]), *row[7:]) for row in rows]


def redeliver(db: Database, message_id: str, now: datetime | None = None) -> None:
    """Send the message again now, whatever became of it (its log keeps the earlier attempts)."""
    now = now or datetime.now(UTC)
    db.execute(
        f"UPDATE {MESSAGES} SET status = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
        (PENDING, now, now, message_id),
    )


def sweep(db: Database, before: datetime, *, batch: int = 1000, batches: int = 100) -> int:
    """Delete the messages nothing happened to since ``before`` (made, attempted or sent
    again), with their attempts; pending ones are still owed and stay. How many went. Each
    ``batch`` is its own short transaction, at most ``batches`` of them: a backlog goes over
    several sweeps rather than in one long lock."""
    removed = 0
    for _ in range(batches):
        rows = db.execute(
            f"SELECT id FROM {MESSAGES} WHERE updated_at < ? AND status <> ? "
            "ORDER BY updated_at LIMIT ?",
            (before, PENDING, batch),
        )
        if not rows:
            break
        with db.transaction():
            # The condition again: one sent again meanwhile is fresh, and stays with its log.
            gone = db.select_in(
                f"DELETE FROM {MESSAGES} WHERE updated_at < ? AND status <> ? AND {{in_}} "
                "RETURNING id",
                "id",
                [row[0] for row in rows],
                (before, PENDING),
            )
            db.select_in(
                f"DELETE FROM {ATTEMPTS} WHERE {{in_}} RETURNING id",
                "message_id",
                [row[0] for row in gone],
            )
        removed += len(gone)
        if len(rows) < batch:
            break
    return removed


def recover(db: Database, endpoint_id: str, since: datetime, now: datetime | None = None) -> int:
    """Send again every message of the endpoint that failed, made since ``since``."""
    now = now or datetime.now(UTC)
    rows = db.execute(
        f"UPDATE {MESSAGES} SET status = ?, next_attempt_at = ?, updated_at = ? "
        "WHERE endpoint_id = ? AND status = ? AND created_at >= ? RETURNING id",
        (PENDING, now, now, endpoint_id, FAILED, since),
    )
    return len(rows)
