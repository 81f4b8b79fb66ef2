"""An embedded MagicToolbox for end-to-end tests: store, blobs, projector and the Functions host.

The host runs the real ``handlers.function_app.app`` with Event Grid delivery semantics; retries
and schedules are compressed (milliseconds, every second) so a test sees them happen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from events.following import Backoff
from events.opening import open_store
from events.store import EventStore
from handlers.bootstrap import bootstrap
from handlers.function_app import create
from handlers.host import LocalFunctionsHost, RetryPolicy
from handlers.settings import given
from services.blobs.local import LocalBlobStore
from services.executions.actions import Upload
from services.executions.decider import ExecutionState, Status
from services.tools.registry import ToolRegistry, discover
from tests.handlers.tools import TEST_TOOLS

FAST_SETTINGS = {
    "SWEEP_SCHEDULE": "* * * * * *",
    "RETENTION_SCHEDULE": "0 0 0 * * *",
    "RELAY_SCHEDULE": "0 0 0 * * *",
    "WEBHOOKS_SCHEDULE": "0 0 0 * * *",
    "RETRY_BACKOFF_SECONDS": "0.2",
}
FAST_RETRY = RetryPolicy(max_attempts=3, backoff=Backoff(first=0.01, factor=2.0, cap=0.1))


def registry_with_test_tools() -> ToolRegistry:
    registry = discover()
    for tool in TEST_TOOLS:
        assert registry.register(tool), registry.problems
    return registry


class Toolbox:
    """One embedded deployment: what ``make run`` wires, with test-sized timings."""

    def __init__(self, store_url: str, db_url: str, root: Path, *, workers: int = 4) -> None:
        self.store_url = store_url
        self.store: EventStore = open_store(store_url)
        self.store.setup()
        self.blobs = LocalBlobStore(root / "blobs", signing_key=b"test-key")
        self.blobs.setup()
        self.registry = registry_with_test_tools()
        settings = given({**FAST_SETTINGS, "DATABASE_URL": db_url, "EVENTSTORE_URL": store_url})
        self.parts = bootstrap(
            settings,
            store=self.store,
            blobs=self.blobs,
            registry=self.registry,
            progress_interval=0.0,
        )
        self.app = create(lambda: self.parts)  # the real functions, over these parts
        self.service = self.parts.service
        self.projector = self.parts.projector()
        self.projector.setup()
        self.deadletters = self.parts.deadletters()
        self.workers = workers
        self.host = self.new_host()
        self._projector: tuple | None = None

    def new_host(self, *, timers: bool = True) -> LocalFunctionsHost:
        return LocalFunctionsHost(
            self.app,
            self.store,
            self.deadletters,
            settings=self.parts.settings.schedules,
            retry=FAST_RETRY,
            workers=self.workers,
            timers=timers,
        )

    def restart_host(self, *, timers: bool = True, start: bool = True) -> LocalFunctionsHost:
        """Stop the host and start a new one from the saved checkpoint (a process restart)."""
        self.host.stop()
        self.host = self.new_host(timers=timers)
        if start:
            self.host.start()
        return self.host

    def start(self) -> Toolbox:
        self._projector = self.projector.start()
        self.host.start()
        return self

    def close(self) -> None:
        self.host.stop()
        if self._projector is not None:
            thread, stop = self._projector
            stop.set()
            thread.join(10)
        self.projector.close()
        self.parts.close()
        self.store.close()

    def submit(
        self, tool: str, params: dict | None = None, file: tuple[str, bytes] | None = None
    ) -> UUID:
        upload = None
        if file is not None:
            name, content = file
            upload = Upload(name, [content], len(content))
        # As the API would for an async tool; a sync tool is left for the host (no request).
        submission = self.parts.executions.submit("tester", tool, params, upload, run_sync=False)
        return submission.execution.id

    def wait_for(
        self, execution_id: UUID, statuses: set[Status], timeout: float = 30.0
    ) -> ExecutionState:
        deadline = time.monotonic() + timeout
        while True:
            state = self.service.load(execution_id).state
            if state.status in statuses:
                return state
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{execution_id} is {state.status.value}, not {statuses} after {timeout}s"
                )
            time.sleep(0.02)

    def event_names(self, execution_id: UUID) -> list[str]:
        return [e.type.rsplit(".", 1)[1] for e in self.service.history(execution_id)]

    def output_bytes(self, state: ExecutionState) -> bytes:
        assert state.output is not None
        return b"".join(self.blobs.get(state.output.container, state.output.name))


@pytest.fixture
def sqlite_toolbox(tmp_path: Path) -> Iterator[Toolbox]:
    box = Toolbox(
        f"sqlite:///{tmp_path / 'events.sqlite3'}",
        f"sqlite:///{tmp_path / 'read.sqlite3'}",
        tmp_path,
    ).start()
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def toolbox(store_url: str, tmp_path: Path) -> Iterator[Toolbox]:
    """The toolbox on both backends (read models beside the events)."""
    box = Toolbox(store_url, store_url, tmp_path).start()
    try:
        yield box
    finally:
        box.close()
