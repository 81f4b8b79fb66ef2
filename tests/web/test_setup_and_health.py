"""``magictoolbox migrate`` installs the event store schema; ``GET /healthz`` reports its head."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from events.store import EventStore
from handlers.bootstrap import bootstrap
from handlers.settings import Settings
from tests.web.support import run_cli, submit
from web.parts import serving


def test_migrate_installs_the_event_store_schema(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"

    before = run_cli("audit", "verify", "--all", "--store", url)
    assert before.returncode == 1
    assert "magictoolbox migrate" in before.stderr
    assert "Traceback" not in before.stderr

    migrated = run_cli("migrate", "--no-input", DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr
    assert "Event store schema and read models are up to date." in migrated.stdout

    after = run_cli("audit", "verify", "--all", DATABASE_URL=url)
    assert after.returncode == 0, after.stderr
    assert "checked 0 streams, 0 events" in after.stdout


def test_migrate_installs_the_schema_in_postgres(pg_store_url: str) -> None:
    """DATABASE_URL alone: Django's tables and the event store share the ?schema= of the URL."""
    migrated = run_cli("migrate", "--no-input", DATABASE_URL=pg_store_url)
    assert migrated.returncode == 0, migrated.stderr

    after = run_cli("audit", "verify", "--all", "--store", pg_store_url)
    assert after.returncode == 0, after.stderr


@pytest.fixture
def configured_store(store: EventStore, store_url: str) -> Iterator[EventStore]:
    configured = Settings.from_env().but(EVENTSTORE_URL=store_url)
    with serving(bootstrap(configured, store=store)):
        yield store


def test_healthz_reports_the_head_position(client, configured_store: EventStore) -> None:
    submit(configured_store)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "head_position": configured_store.head_position()}
    assert response.json()["head_position"] >= 3


def test_healthz_answers_get_only(client, configured_store: EventStore) -> None:
    assert client.post("/healthz").status_code == 405


def test_outside_the_local_deployment_a_secret_key_is_required() -> None:
    refused = run_cli("check", MAGICTOOLBOX_DEPLOYMENT="production", SECRET_KEY="")
    assert refused.returncode != 0
    assert refused.stderr.strip() == "SECRET_KEY: required outside the local deployment"


def test_locally_the_secret_key_is_made_once_and_kept() -> None:
    show = "from django.conf import settings; print(settings.SECRET_KEY, settings.DEBUG)"
    first = run_cli("shell", "-c", show, SECRET_KEY="")
    second = run_cli("shell", "-c", show, SECRET_KEY="")
    assert first.returncode == 0, first.stderr
    key, debug = first.stdout.splitlines()[-1].split()
    assert len(key) >= 50 and "insecure" not in key and debug == "False"
    assert second.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]
