"""The webhook tables: endpoints, the messages owed to them, every attempt, and executions' owners.

They sit beside the read models (the same database) but are not read models: they hold what users
registered and what is owed to them, so no rebuild replays them.
"""

from __future__ import annotations

from events import checkpoints
from events.database import Database

CHECKPOINT = "webhooks"  # the fan-out's feed position
ENDPOINTS = "webhook_endpoints"
MESSAGES = "webhook_messages"
ATTEMPTS = "webhook_attempts"
OWNERS = "webhook_owners"

ENDPOINT_COLUMNS = (
    "id, owner, url, description, event_types, tools, enabled, secret, previous_secret, "
    "previous_until, disabled_reason, failing_since, created_at, updated_at"
)
MESSAGE_COLUMNS = (
    "id, endpoint_id, event_id, position, event_type, body, status, attempts, next_attempt_at, "
    "created_at, updated_at"
)
ATTEMPT_COLUMNS = (
    "id, message_id, endpoint_id, attempt, at, status, ok, latency_ms, response, error"
)

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
    f"CREATE INDEX IF NOT EXISTS {MESSAGES}_updated ON {MESSAGES} (updated_at)",  # retention
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


def setup(db: Database) -> None:
    """Create the tables and the fan-out's checkpoint if they are missing (safe to repeat)."""
    with db.transaction():
        for ddl in _DDL:
            db.execute(db.ddl(ddl))
        checkpoints.create_table(db, [CHECKPOINT])
