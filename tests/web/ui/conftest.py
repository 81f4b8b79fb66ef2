"""An embedded deployment behind the UI: temp event store, read models and blobs, a signed-in
user (and a second one), and the projector run on demand, as the web process would run it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from django.contrib.auth.models import User
from django.test import Client

from projections.projector import Projector
from services.tools.runner import ToolRunner
from web import bootstrap


class Deployment:
    def __init__(self) -> None:
        deps = bootstrap.functions_dependencies()
        deps.blobs.setup()
        deps.store.setup()
        self.store = deps.store
        self.blobs = deps.blobs
        self.projector = Projector(deps.store, bootstrap.settings.DATABASE_URL)
        self.projector.setup()

    def project(self) -> None:
        """Bring the read models (status, history) up to date with the store."""
        while self.projector.run_once():
            pass

    def work(self, execution_id: str | UUID) -> str:
        """Run an async execution's next attempt as the Functions host would; its outcome."""
        service = bootstrap.execution_service()
        runner = ToolRunner(service, self.blobs, bootstrap.tool_registry(), worker_id="test")
        report = runner.run(UUID(str(execution_id)), async_only=True)
        self.project()
        return report.outcome

    def close(self) -> None:
        self.projector.close()


@pytest.fixture
def deployment(tmp_path: Path, settings: Any, db: None) -> Iterator[Deployment]:
    settings.EVENTSTORE_URL = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    settings.DATABASE_URL = f"sqlite:///{tmp_path / 'read.sqlite3'}"
    settings.BLOB_STORAGE = str(tmp_path / "blobs")
    bootstrap.reset()
    deployment = Deployment()
    yield deployment
    deployment.close()
    bootstrap.reset()


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="a-long-secret-42")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", password="another-long-secret-7")


@pytest.fixture
def signed_in(client: Client, alice: User) -> Client:
    client.force_login(alice)
    return client
