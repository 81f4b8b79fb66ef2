"""Shared fixtures: real PostgreSQL (required under CI=true) and event stores on both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from events.opening import open_store
from events.store import EventStore
from services.workers.pool import WorkerPool

PG_URL = os.environ.get("MAGICTOOLBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

pytest_plugins = ["tests.azurite"]  # the session's Azurite, for every test that needs one


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip()


def require_postgres() -> str:
    """The PostgreSQL URL, or skip (fail under CI, where PostgreSQL must run)."""
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but is unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {problem}")
    return PG_URL


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test; dropped afterwards."""
    url = require_postgres()
    schema = f"mt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_store_url(pg_schema: str) -> str:
    return f"{PG_URL}?schema={pg_schema}"


@pytest.fixture
def sqlite_store_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'events.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_store_url" if request.param == "sqlite" else "pg_store_url"
    return request.getfixturevalue(name)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    s = open_store(store_url)
    s.setup()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def tool_pool() -> Iterator[WorkerPool]:
    """Tool worker processes shared by the tests that build their own runners (tools defined
    in test modules are imported by the workers, as plugins are)."""
    pool = WorkerPool(2, process_id=f"tests:{os.getpid()}", per_owner=2, nice=0)
    try:
        yield pool
    finally:
        pool.close()


PG_FIXTURES = frozenset({"pg_schema", "pg_store_url"})


def uses_postgres(item: pytest.Item) -> bool:
    """Whether a test talks to the PostgreSQL server: a fixture, a parameter or its name says
    so, or it is marked ``postgres`` (a test that calls ``require_postgres()`` itself)."""
    if item.get_closest_marker("postgres") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "postgres" in map(str, callspec.params.values()):
        return True
    return bool(PG_FIXTURES & set(getattr(item, "fixturenames", ()))) or (
        "postgres" in item.name.lower()
    )


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Puts the PostgreSQL tests in one xdist group, for ``make test``'s first pass
    (``--dist loadgroup``): they run one at a time, on one worker, beside the other worker's
    tests. They share one server, whose feed reads stop at the oldest transaction open
    anywhere on it (events/sql/read-feed.sql): a test's events could be held out of its own
    reads by another's. The tests marked ``timed`` (they measure another user's wait while they
    attack a real server) run alone, in the second pass."""
    for item in items:
        if uses_postgres(item):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.xdist_group("postgres"))
