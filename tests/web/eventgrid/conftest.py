"""The Event Grid receiver on the embedded deployment: its key, the wake-ups it causes, the
project's own events as Event Grid delivers them, and a fingerprint of the store to prove that a
delivery leaves it alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from events.store import EventStore
from tests.web.deployment import Configure, Deployment
from tests.web.support import submit
from web import runtime

URL = "/eventgrid/events"
KEY = "receiver-key-0123456789"
BATCH = "application/cloudevents-batch+json"


@pytest.fixture
def receiver(deployment: Deployment, configure: Configure) -> Deployment:
    """The receiver with a key and no Entra ID audience."""
    configure(EVENTGRID_RECEIVER_KEY=KEY)
    configure(EVENTGRID_RECEIVER_AUDIENCE="")
    configure(EVENTGRID_RECEIVER_TENANT_ID="")
    configure(EVENTGRID_RECEIVER_JWKS_URL="")
    return deployment


@pytest.fixture
def woken() -> Iterator[list[int]]:
    """One entry per ``runtime.wake()`` while the test runs."""
    calls: list[int] = []

    def listener() -> None:
        calls.append(1)

    runtime.on_wake(listener)
    yield calls
    runtime.forget_wake(listener)


@pytest.fixture
def cloudevents(receiver: Deployment) -> list[dict[str, Any]]:
    """Two executions' events, as the store turns them into CloudEvents for Event Grid."""
    submit(receiver.store)
    submit(receiver.store, finish=False)
    return [event.to_cloudevent() for event in receiver.store.read_all()]


def fingerprint(store: EventStore) -> tuple[int, dict[str, int]]:
    """The store's head and every stream's version: what any write would change."""
    return store.head_position(), {s: store.stream_version(s) for s in store.streams()}


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
