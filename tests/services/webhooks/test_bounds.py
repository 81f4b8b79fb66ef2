"""What bounds a user's webhooks, on both backends: how many endpoints one owner may have (also
when their requests race), and how long messages and their delivery log are kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.database import Database
from events.store import EventStore
from handlers import work
from handlers.bootstrap import bootstrap
from handlers.settings import Settings
from services.problems import Problem
from services.tools.registry import default_registry
from services.webhooks import endpoints as webhook_endpoints, messages as webhook_messages, tables
from services.webhooks.actions import WebhookActions
from services.webhooks.dispatcher import WebhookDispatcher
from services.webhooks.messages import Message
from services.webhooks.signing import new_secret
from tests.events.factories import execution_events

PUBLIC = "https://93.184.215.14/hooks"  # an IP address: no DNS
OWNER = "7"  # execution_events()' owner


@pytest.fixture
def db(store_url: str, store: EventStore) -> Iterator[Database]:
    with Database(store_url) as d:
        tables.setup(d)
        yield d


# -- endpoints per user ------------------------------------------------------------------------


def actions_for(store_url: str, per_user: int) -> tuple[WebhookActions, list[Database]]:
    local = threading.local()
    opened: list[Database] = []

    def connection() -> Database:
        if not hasattr(local, "db"):
            local.db = Database(store_url)
            opened.append(local.db)
        return local.db

    return WebhookActions(connection, default_registry(), per_user=per_user), opened


def test_an_owner_gets_at_most_per_user_endpoints_even_racing(store_url: str, db: Database) -> None:
    actions, opened = actions_for(store_url, per_user=5)

    def add(n: int) -> str:
        try:
            actions.create("mallory", url=f"{PUBLIC}/{n}")
        except Problem as exc:
            return f"{exc.status} {exc.code} {exc.extra}"
        return "201"

    try:
        with ThreadPoolExecutor(8) as pool:  # twenty at once, as a script would
            answers = list(pool.map(add, range(20)))
        assert answers.count("201") == 5
        assert set(answers) - {"201"} == {"409 webhook_limit_reached {'limit': 5}"}
        assert len(actions.endpoints("mallory")) == 5

        actions.create("alice", url=PUBLIC)  # another owner is not affected
        with pytest.raises(Problem) as refused:
            actions.create("mallory", url=PUBLIC)
        assert refused.value.detail == (
            "you have 5 webhook endpoints, as many as one may have: delete one to add another"
        )
        actions.delete("mallory", actions.endpoints("mallory")[0].id)  # room for one again
        actions.create("mallory", url=PUBLIC)
        assert len(actions.endpoints("mallory")) == 5
    finally:
        for connection in opened:
            connection.close()


# -- retention ---------------------------------------------------------------------------------


def messages_aged(db: Database, store: EventStore, ages: dict[str, tuple[str, float]]) -> dict:
    """One endpoint, one execution's messages with an attempt each, then each message's status
    and last activity set to ``ages[event type] = (status, days ago)``. Messages by type."""
    endpoint = webhook_endpoints.create_endpoint(db, owner=OWNER, url=PUBLIC, secret=new_secret())
    stream, events = execution_events()
    store.append(stream, events)
    recorded = store.read_stream(stream)
    webhook_messages.fan_out(db, recorded, webhook_messages.checkpoint(db))
    now = datetime.now(UTC)
    by_type: dict[str, Message] = {}
    for message in webhook_messages.messages(db, endpoint.id):
        short = message.event_type.rsplit(".", 1)[-1]
        status, days = ages[short]
        at = now - timedelta(days=days)
        webhook_messages.record_attempt(
            db, message, status=500, ok=False, latency_ms=1.0, response="", error=None,
            next_attempt_at=None, now=at,
        )  # fmt: skip
        db.execute(
            "UPDATE webhook_messages SET status = ?, updated_at = ?, created_at = ? WHERE id = ?",
            (status, at, at, message.id),
        )
        by_type[short] = message
    return by_type


def attempted(db: Database, message: Message) -> int:
    return len(webhook_messages.attempts(db, message.endpoint_id, message_id=message.id))


def test_the_sweep_deletes_what_is_past_retention_with_its_attempts(
    store: EventStore, store_url: str, db: Database
) -> None:
    aged = messages_aged(
        db,
        store,
        {
            "Submitted": ("delivered", 31),  # past retention
            "Uploaded": ("failed", 30.5),  # past retention
            "Processing": ("delivered", 29),  # kept
            "Completed": ("pending", 40),  # still owed: kept
        },
    )
    dispatcher = WebhookDispatcher(store, store_url, retention=timedelta(days=30))
    try:
        assert dispatcher.sweep() == 2
    finally:
        dispatcher.close()

    left = {m.id for m in webhook_messages.messages(db, aged["Submitted"].endpoint_id)}
    assert left == {aged["Processing"].id, aged["Completed"].id}
    assert [attempted(db, aged[t]) for t in ("Submitted", "Uploaded")] == [0, 0]
    assert [attempted(db, aged[t]) for t in ("Processing", "Completed")] == [1, 1]


def test_the_webhooks_timer_sweeps_by_the_setting(
    store: EventStore, store_url: str, db: Database, tmp_path: Path
) -> None:
    aged = messages_aged(
        db,
        store,
        {
            "Submitted": ("delivered", 3),
            "Uploaded": ("failed", 2.5),
            "Processing": ("delivered", 1.5),
            "Completed": ("failed", 0.5),
        },
    )
    env = {
        "DATABASE_URL": store_url,
        "BLOB_STORAGE": str(tmp_path / "blobs"),
        "WEBHOOK_MESSAGE_RETENTION_DAYS": "2",
    }
    parts = bootstrap(Settings.from_env(env), store=store)
    try:
        report = work.deliver_webhooks(parts)
        again = work.deliver_webhooks(parts)
    finally:
        parts.close()

    assert (report.swept, again.swept) == (2, 0)
    left = {m.id for m in webhook_messages.messages(db, aged["Submitted"].endpoint_id)}
    assert left == {aged["Processing"].id, aged["Completed"].id}
