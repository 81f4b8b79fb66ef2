"""Projection fixtures: the read models live in the event store's database, as by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from events.database import Database
from events.store import EventStore
from projections.projector import Projector
from services.executions.service import ExecutionService


@pytest.fixture
def db_url(store_url: str) -> str:
    return store_url


@pytest.fixture
def service(store: EventStore) -> ExecutionService:
    return ExecutionService(store)


@pytest.fixture
def projector(store: EventStore, db_url: str) -> Iterator[Projector]:
    p = Projector(store, db_url, first_backoff=0.0)
    p.setup()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database(db_url) as d:
        yield d
