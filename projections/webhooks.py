"""User webhooks' tables: endpoints, the messages owed to them, and every delivery attempt.

The messages are built from the event feed like a read model: ``fan_out`` turns a batch of events
into one message per (matching endpoint, event), in the same transaction as the ``webhooks``
checkpoint, so a crash never creates a message twice or skips one. It is deliberately not a
registered projection: a rebuild must not send a user's old events again.

A message is ``pending`` until delivered (``delivered``), given up after its last attempt or
because its endpoint was disabled (``failed``). Senders ``claim`` due messages by pushing their
``next_attempt_at`` past a lease, so two delivery workers (the web process and the timer
Function) never send one attempt twice, and a worker that dies mid-send leaves the message due
again when the lease ends: at least once, never lost. The web (API, UI) reads and edits these
tables through the functions here; the delivery worker is ``handlers.webhooks``.
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

CHECKPOINT = "webhooks"
ENDPOINTS = "webhook_endpoints"
MESSAGES = "webhook_messages"
ATTEMPTS = "webhook_attempts"
OWNERS = "webhook_owners"
SUBMITTED = "MagicToolbox.Execution.Submitted"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
EXCERPT = 500

_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {ENDPOINTS} (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        url TEXT NOT NULL,
        description TEXT NOT NULL,
        event_types TEXT NOT NULL,
        tools TEXT NOT NULL,
        enabled {{bool}} NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_until {{ts}},
        disabled_reason TEXT,
        failing_since {{ts}},
        created_at {{ts}} NOT NULL,
        updated_at {{ts}} NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {ENDPOINTS}_owner ON {ENDPOINTS} (owner, created_at)",
    f"""CREATE TABLE IF NOT EXISTS {MESSAGES} (
        id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        position {{bigint}} NOT NULL,
        event_type TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at {{ts}},
        created_at {{ts}} NOT NULL,
        updated_at {{ts}} NOT NULL,
        UNIQUE (endpoint_id, event_id)
    )""",
    f"CREATE INDEX IF NOT EXISTS {MESSAGES}_due ON {MESSAGES} (status, next_attempt_at)",
    f"CREATE INDEX IF NOT EXISTS {MESSAGES}_endpoint ON {MESSAGES} (endpoint_id, position)",
    f"""CREATE TABLE IF NOT EXISTS {ATTEMPTS} (
        id TEXT PRIMARY KEY,
        message_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at {{ts}} NOT NULL,
        status INTEGER,
        ok {{bool}} NOT NULL,
        latency_ms {{float}} NOT NULL,
        response TEXT NOT NULL,
        error TEXT
    )""",
    f"CREATE INDEX IF NOT EXISTS {ATTEMPTS}_endpoint ON {ATTEMPTS} (endpoint_id, at)",
    f"CREATE INDEX IF NOT EXISTS {ATTEMPTS}_message ON {ATTEMPTS} (message_id, attempt)",
    f"CREATE TABLE IF NOT EXISTS {OWNERS} (execution_id TEXT PRIMARY KEY, owner TEXT NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    owner: str
    url: str
    description: str
    event_types: tuple[str, ...]  # short names ("Completed") or full types; () = every type
    tools: tuple[str, ...]  # tool slugs; () = every tool
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_until: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    def secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous during its overlap."""
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def wants(self, event_type: str, tool: str) -> bool:
        if self.event_types:
            short = event_type.rsplit(".", 1)[-1]
            if event_type not in self.event_types and short not in self.event_types:
                return False
        return not self.tools or tool in self.tools


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


_ENDPOINT_COLUMNS = (
    "id, owner, url, description, event_types, tools, enabled, secret, previous_secret, "
    "previous_until, disabled_reason, failing_since, created_at, updated_at"
)
_MESSAGE_COLUMNS = (
    "id, endpoint_id, event_id, position, event_type, body, status, attempts, next_attempt_at, "
    "created_at, updated_at"
)
_ATTEMPT_COLUMNS = (
    "id, message_id, endpoint_id, attempt, at, status, ok, latency_ms, response, error"
)


def setup(db: Database) -> None:
    with db.transaction():
        for ddl in _DDL:
            db.execute(db.ddl(ddl))
        checkpoints.create_table(db, [CHECKPOINT])


def _endpoint(row: Sequence[Any]) -> Endpoint:
    values = list(row)
    values[4] = tuple(orjson.loads(values[4]))
    values[5] = tuple(orjson.loads(values[5]))
    values[6] = bool(values[6])
    return Endpoint(*values)


# -- endpoints (the web's API and UI) -------------------------------------------------------------


def create_endpoint(
    db: Database,
    *,
    owner: str,
    url: str,
    secret: str,
    description: str = "",
    event_types: Sequence[str] = (),
    tools: Sequence[str] = (),
    enabled: bool = True,
    now: datetime | None = None,
) -> Endpoint:
    now = now or datetime.now(UTC)
    endpoint_id = str(uuid.uuid4())
    db.execute(
        f"INSERT INTO {ENDPOINTS} ({_ENDPOINT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, ?)",
        (
            endpoint_id,
            owner,
            url,
            description,
            orjson.dumps(list(event_types)).decode(),
            orjson.dumps(list(tools)).decode(),
            enabled,
            secret,
            now,
            now,
        ),
    )
    endpoint = get_endpoint(db, endpoint_id)
    assert endpoint is not None
    return endpoint


def get_endpoint(db: Database, endpoint_id: str, owner: str | None = None) -> Endpoint | None:
    """The endpoint, or None (also when it belongs to someone other than ``owner``)."""
    rows = db.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE id = ?", (endpoint_id,))
    if not rows:
        return None
    endpoint = _endpoint(rows[0])
    if owner is not None and endpoint.owner != owner:
        return None
    return endpoint


def list_endpoints(db: Database, owner: str) -> list[Endpoint]:
    rows = db.execute(
        f"SELECT {_ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE owner = ? ORDER BY created_at, id",
        (owner,),
    )
    return [_endpoint(row) for row in rows]


def update_endpoint(
    db: Database, endpoint_id: str, *, now: datetime | None = None, **changes: Any
) -> Endpoint:
    """Change ``url``, ``description``, ``event_types``, ``tools`` or ``enabled``.

    Enabling clears the reason it was disabled and its failing streak.
    """
    allowed = {"url", "description", "event_types", "tools", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    now = now or datetime.now(UTC)
    sets, params = [], []
    for name, value in changes.items():
        if name in {"event_types", "tools"}:
            value = orjson.dumps(list(value)).decode()
        sets.append(f"{name} = ?")
        params.append(value)
    if changes.get("enabled") is True:
        sets += ["disabled_reason = NULL", "failing_since = NULL"]
    sets.append("updated_at = ?")
    params.append(now)
    db.execute(f"UPDATE {ENDPOINTS} SET {', '.join(sets)} WHERE id = ?", (*params, endpoint_id))
    endpoint = get_endpoint(db, endpoint_id)
    if endpoint is None:
        raise KeyError(endpoint_id)
    return endpoint


def rotate_secret(
    db: Database, endpoint_id: str, new_secret: str, overlap: timedelta, now: datetime | None = None
) -> Endpoint:
    """A new signing secret; the old one keeps signing beside it for ``overlap``."""
    now = now or datetime.now(UTC)
    db.execute(
        f"UPDATE {ENDPOINTS} SET previous_secret = secret, previous_until = ?, secret = ?, "
        "updated_at = ? WHERE id = ?",
        (now + overlap, new_secret, now, endpoint_id),
    )
    endpoint = get_endpoint(db, endpoint_id)
    if endpoint is None:
        raise KeyError(endpoint_id)
    return endpoint


def delete_endpoint(db: Database, endpoint_id: str) -> None:
    with db.transaction():
        db.execute(f"DELETE FROM {ATTEMPTS} WHERE endpoint_id = ?", (endpoint_id,))
        db.execute(f"DELETE FROM {MESSAGES} WHERE endpoint_id = ?", (endpoint_id,))
        db.execute(f"DELETE FROM {ENDPOINTS} WHERE id = ?", (endpoint_id,))


def disable(db: Database, endpoint_id: str, reason: str, now: datetime | None = None) -> None:
    """Turn the endpoint off with the reason its owner will see; its pending messages fail."""
    now = now or datetime.now(UTC)
    with db.transaction():
        db.execute(
            f"UPDATE {ENDPOINTS} SET enabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ?",
            (False, reason, now, endpoint_id),
        )
        db.execute(
            f"UPDATE {MESSAGES} SET status = ?, next_attempt_at = NULL, updated_at = ? "
            "WHERE endpoint_id = ? AND status = ?",
            (FAILED, now, endpoint_id, PENDING),
        )


# -- fan-out: the feed becomes messages ----------------------------------------------------------


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
            f"SELECT {_ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE enabled = ?", (True,)
        ):
            endpoint = _endpoint(row)
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
                f"INSERT INTO {MESSAGES} ({_MESSAGE_COLUMNS}) "
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


# -- the queue -----------------------------------------------------------------------------------


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
        f"ORDER BY position LIMIT ?{lock}) RETURNING {_MESSAGE_COLUMNS}"
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
            f"INSERT INTO {ATTEMPTS} ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            f"INSERT INTO {ATTEMPTS} ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


# -- the delivery log, redelivery and recovery (the web) -----------------------------------------


def messages(
    db: Database, endpoint_id: str, *, status: str | None = None, limit: int = 50
) -> list[Message]:
    where = " AND status = ?" if status else ""
    params: tuple[Any, ...] = (endpoint_id, status) if status else (endpoint_id,)
    rows = db.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM {MESSAGES} WHERE endpoint_id = ?{where} "
        "ORDER BY position DESC LIMIT ?",
        (*params, limit),
    )
    return [Message(*row) for row in rows]


def get_message(db: Database, message_id: str) -> Message | None:
    rows = db.execute(f"SELECT {_MESSAGE_COLUMNS} FROM {MESSAGES} WHERE id = ?", (message_id,))
    return Message(*rows[0]) if rows else None


def attempts(
    db: Database, endpoint_id: str, *, message_id: str | None = None, limit: int = 100
) -> list[Attempt]:
    where, params = "endpoint_id = ?", [endpoint_id]
    if message_id:
        where += " AND message_id = ?"
        params.append(message_id)
    rows = db.execute(
        f"SELECT {_ATTEMPT_COLUMNS} FROM {ATTEMPTS} WHERE {where} ORDER BY at DESC LIMIT ?",
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


def recover(db: Database, endpoint_id: str, since: datetime, now: datetime | None = None) -> int:
    """Send again every message of the endpoint that failed, made since ``since``."""
    now = now or datetime.now(UTC)
    rows = db.execute(
        f"UPDATE {MESSAGES} SET status = ?, next_attempt_at = ?, updated_at = ? "
        "WHERE endpoint_id = ? AND status = ? AND created_at >= ? RETURNING id",
        (PENDING, now, now, endpoint_id, FAILED, since),
    )
    return len(rows)
