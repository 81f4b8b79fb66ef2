"""Fixtures for the web tests: tampering with a stored event behind the store's back."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from tests.conftest import PG_URL
from tests.web.deployment import configure, deployment  # noqa: F401 - fixtures for every web test


def _tamper_postgres(schema: str, position: int) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        (data_type,) = conn.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'events' AND column_name = 'data'",
            (schema,),
        ).fetchone()
        conn.execute(f'ALTER TABLE "{schema}".events DISABLE TRIGGER USER')
        try:
            updated = conn.execute(
                f'UPDATE "{schema}".events SET data = %s::{data_type} WHERE position = %s',
                ('{"attempt": 1, "worker_id": "mallory", "deadline": "2030-01-01T00:00:00Z"}',
                 position),
            )  # fmt: skip
            assert updated.rowcount == 1
        finally:
            conn.execute(f'ALTER TABLE "{schema}".events ENABLE TRIGGER USER')


def _tamper_sqlite(url: str, position: int) -> None:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        # The store refuses UPDATEs with triggers; an attacker with the file can drop them.
        triggers = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
        ).fetchall()
        for (name,) in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        updated = conn.execute(
            "UPDATE events SET data = ? WHERE position = ?",
            ('{"attempt":1,"worker_id":"mallory","deadline":"2030-01-01T00:00:00Z"}', position),
        )
        assert updated.rowcount == 1


@pytest.fixture
def tamper(request: pytest.FixtureRequest, store_url: str):
    if store_url.startswith("sqlite:"):
        return lambda position: _tamper_sqlite(store_url, position)
    schema = request.getfixturevalue("pg_schema")
    return lambda position: _tamper_postgres(schema, position)
