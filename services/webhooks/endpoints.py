"""Webhook endpoints: what a user registered (URL, filters, secrets) and whether it is on.

Plain functions over the endpoints table; checking what a user sends is ``actions``' job.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from events.database import Database
from services.webhooks.tables import ATTEMPTS, ENDPOINT_COLUMNS, ENDPOINTS, MESSAGES

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"  # a message's status


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


def endpoint_from_row(row: Sequence[Any]) -> Endpoint:
    values = list(row)
    values[4] = tuple(orjson.loads(values[4]))
    values[5] = tuple(orjson.loads(values[5]))
    values[6] = bool(values[6])
    return Endpoint(*values)


class LimitReached(Exception):
    """The owner already has as many endpoints as one may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} webhook endpoints per user")
        self.limit = limit


# PostgreSQL advisory locks of two int4 keys: this namespace, then the owner's hash.
_OWNER_LOCK = 0x77686B73  # "whks"


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
    limit: int | None = None,
    now: datetime | None = None,
) -> Endpoint:
    """A new endpoint; ``LimitReached`` when the owner already has ``limit``. The count and the
    insert are one transaction that two creates of one owner take in turn (SQLite's write lock,
    a PostgreSQL advisory lock on the owner), so parallel requests cannot pass the limit."""
    now = now or datetime.now(UTC)
    endpoint_id = str(uuid.uuid4())
    with db.transaction():
        if limit is not None:
            if db.dialect == "postgresql":
                lock = "SELECT pg_advisory_xact_lock(?::integer, hashtext(?))"
                db.execute(lock, (_OWNER_LOCK, owner))
            (count,) = db.execute(f"SELECT COUNT(*) FROM {ENDPOINTS} WHERE owner = ?", (owner,))[0]
            if count >= limit:
                raise LimitReached(limit)
        db.execute(
            f"INSERT INTO {ENDPOINTS} ({ENDPOINT_COLUMNS}) "
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
    rows = db.execute(f"SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE id = ?", (endpoint_id,))
    if not rows:
        return None
    endpoint = endpoint_from_row(rows[0])
    if owner is not None and endpoint.owner != owner:
        return None
    return endpoint


def list_endpoints(db: Database, owner: str) -> list[Endpoint]:
    rows = db.execute(
        f"SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE owner = ? ORDER BY created_at, id",
        (owner,),
    )
    return [endpoint_from_row(row) for row in rows]


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
