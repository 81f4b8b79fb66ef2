"""An embedded deployment behind the web layer (API, UI, live updates): temp event store, read
models and blobs, with the background work (projector, async tools) run on demand by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from django.core.cache import cache

from events.envelope import execution_stream
from projections.projector import Projector
from services.executions.decider import WAITING
from services.tools.runner import ToolRunner
from web import bootstrap

RATES = {"anon": "10000/min", "user": "10000/min", "submit": "10000/min"}


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        deps = bootstrap.functions_dependencies()
        deps.blobs.setup()
        deps.store.setup()
        self.store = deps.store
        self.blobs = deps.blobs
        self.projector = Projector(deps.store, bootstrap.settings.DATABASE_URL)
        self.projector.setup()

    def project(self) -> None:
        """Bring every projection up to date with the store."""
        while self.projector.run_once():
            pass

    def work(self, execution_id: str | UUID) -> str:
        """Run an async execution's next attempt as the Functions host would; its outcome."""
        service = bootstrap.execution_service()
        runner = ToolRunner(service, self.blobs, bootstrap.tool_registry(), worker_id="test")
        report = runner.run(UUID(str(execution_id)), async_only=True)
        self.project()
        return report.outcome

    def events(self, execution_id: str | UUID) -> list[str]:
        stream = execution_stream(UUID(str(execution_id)))
        return [e.type.rsplit(".", 1)[-1] for e in self.store.read_stream(stream)]

    def waiting(self, execution_id: str | UUID) -> bool:
        state, _ = bootstrap.execution_service().load(UUID(str(execution_id)))
        return state.status in WAITING

    def uploads(self) -> list[str]:
        return sorted(item.name for item in self.blobs.list("uploads"))

    def close(self) -> None:
        self.projector.close()


@pytest.fixture
def deployment(tmp_path: Path, settings: Any, db: None) -> Iterator[Deployment]:
    settings.EVENTSTORE_URL = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    settings.DATABASE_URL = f"sqlite:///{tmp_path / 'read.sqlite3'}"
    settings.BLOB_STORAGE = str(tmp_path / "blobs")
    settings.API_THROTTLE_RATES = dict(RATES)
    cache.clear()  # the throttles' history
    bootstrap.reset()
    deployment = Deployment(tmp_path)
    yield deployment
    deployment.close()
    bootstrap.reset()
    cache.clear()
