"""An embedded deployment behind the web layer (API, UI, live updates): temp event store, read
models and blobs, with the background work (projector, async tools) run on demand by the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from django.core.cache import cache

from events.envelope import execution_stream
from handlers.bootstrap import Parts, bootstrap
from handlers.settings import Settings
from services.executions.decider import WAITING
from web.parts import serving

RATES = {"API_THROTTLE_ANON": "10000/min", "API_THROTTLE_USER": "10000/min"}
RATES["API_THROTTLE_SUBMIT"] = "10000/min"


class Deployment:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self._serving = ExitStack()
        self._made: list[Parts] = []
        self.parts = self._serve(bootstrap(settings))
        self.store = self.parts.store
        self.blobs = self.parts.blobs
        self.blobs.setup()
        self.store.setup()
        self.projector = self.parts.projector()
        self.projector.setup()

    def _serve(self, parts: Parts) -> Parts:
        self._made.append(parts)
        return self._serving.enter_context(serving(parts))

    @property
    def settings(self) -> Settings:
        return self.parts.settings

    def configure(self, **changes: Any) -> Parts:
        """Serve with these settings changed from now on (same store, blobs and registry)."""
        self.parts = self._serve(
            bootstrap(
                self.parts.settings.but(**changes),
                store=self.store,
                blobs=self.blobs,
                registry=self.parts.registry,
            )
        )
        return self.parts

    def project(self) -> None:
        """Bring every projection up to date with the store."""
        while self.projector.run_once():
            pass

    def work(self, execution_id: str | UUID) -> str:
        """Run an async execution's next attempt as the Functions host would; its outcome."""
        report = self.parts.runner().run(UUID(str(execution_id)), async_only=True)
        self.project()
        return report.outcome

    def events(self, execution_id: str | UUID) -> list[str]:
        stream = execution_stream(UUID(str(execution_id)))
        return [e.type.rsplit(".", 1)[-1] for e in self.store.read_stream(stream)]

    def waiting(self, execution_id: str | UUID) -> bool:
        return self.parts.service.load(UUID(str(execution_id))).state.status in WAITING

    def uploads(self) -> list[str]:
        return sorted(item.name for item in self.blobs.list("uploads"))

    def close(self) -> None:
        self.projector.close()
        self._serving.close()
        for parts in self._made:
            parts.close()
        self.store.close()


@pytest.fixture
def deployment(tmp_path: Path, db: None) -> Iterator[Deployment]:
    settings = Settings.from_env().but(
        EVENTSTORE_URL=f"sqlite:///{tmp_path / 'events.sqlite3'}",
        DATABASE_URL=f"sqlite:///{tmp_path / 'read.sqlite3'}",
        BLOB_STORAGE=str(tmp_path / "blobs"),
        **RATES,
    )
    cache.clear()  # the throttles' history
    deployment = Deployment(tmp_path, settings)
    yield deployment
    deployment.close()
    cache.clear()


Configure = Callable[..., Parts]


@pytest.fixture
def configure(deployment: Deployment) -> Configure:
    """Change the served deployment's settings from here on: ``configure(NAME=value)``."""
    return deployment.configure
