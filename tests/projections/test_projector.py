"""The projector: checkpoints move with the rows, failures are contained, crashes lose nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import pytest

from events.database import Database
from events.envelope import RecordedEvent
from events.store import EventStore
from projections import history, status, tool_stats
from projections.projector import Projector
from services.executions.service import ExecutionService
from tests.projections.crash_worker import CRASH_EXIT
from tests.projections.support import ROOT, catch_up, complete_run, failed_run, head, wait_readable


class Broken:
    """A projection whose apply always raises, as a bug in one projection would."""

    name = "broken"
    types = None
    tables = ()

    def apply(self, db: Database, events: Sequence[RecordedEvent], prefix: str) -> None:
        raise RuntimeError("division by zero in the broken projection")


def test_status_reports_checkpoint_head_and_lag(
    service: ExecutionService, projector: Projector, store: EventStore
) -> None:
    complete_run(service)
    complete_run(service)
    catch_up(projector)  # waits until the feed shows all 8 events
    before = {s.name: s for s in projector.status()}
    assert set(before) == {"status", "history", "tool_stats"}
    for s in before.values():
        assert (s.checkpoint, s.head, s.lag, s.last_error) == (head(store), head(store), 0, None)

    complete_run(service)
    wait_readable(store)
    for s in projector.status():
        assert s.lag == 4
        assert s.head - s.checkpoint == 4


def test_a_failing_projection_does_not_stop_the_others(
    service: ExecutionService, store: EventStore, db_url: str, db: Database
) -> None:
    projector = Projector(
        store, db_url, projections=[status.PROJECTION, Broken(), history.PROJECTION]
    )
    projector.first_backoff = 0.0
    projector.setup()
    execution_id = complete_run(service, owner="9")
    catch_up(projector)

    assert status.get(db, execution_id).status == "completed"
    assert [r.execution_id for r in history.recent(db, "9")] == [str(execution_id)]
    by_name = {s.name: s for s in projector.status()}
    assert by_name["broken"].checkpoint == 0
    assert by_name["broken"].lag == head(store)
    assert "division by zero" in by_name["broken"].last_error
    assert by_name["broken"].failed_at is not None
    assert by_name["status"].last_error is None and by_name["status"].lag == 0
    projector.close()


def test_a_failed_projection_is_retried_and_its_error_cleared_once_it_works(
    service: ExecutionService, store: EventStore, db_url: str, db: Database
) -> None:
    flaky = tool_stats.ToolStatsProjection()
    calls = {"n": 0}
    real_apply = flaky.apply

    def apply(db: Database, events: Sequence[RecordedEvent], prefix: str) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("blob metadata service unavailable")
        real_apply(db, events, prefix)

    flaky.apply = apply  # type: ignore[method-assign]
    projector = Projector(store, db_url, projections=[flaky], first_backoff=0.05)
    projector.setup()
    for _ in range(3):
        complete_run(service, tool="pdf-merge")
    catch_up(projector)
    (s,) = projector.status()
    assert s.last_error is not None and "unavailable" in s.last_error

    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while projector.status()[0].lag and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    (s,) = projector.status()
    assert (s.lag, s.last_error, s.failed_at) == (0, None, None)
    assert tool_stats.tool_stats(db)["pdf-merge"].counts == {"completed": 3}
    projector.close()


def test_a_crash_between_rows_and_checkpoint_applies_nothing_twice(
    service: ExecutionService,
    store: EventStore,
    projector: Projector,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = [complete_run(service, tool="image-rotate") for _ in range(6)]
    original = Projector._write_checkpoint
    crashes = {"left": 2}

    def dies_before_checkpoint(self, name, position, events, db) -> None:
        # The rows of this batch are written in the open transaction; now the process "dies".
        if name == "tool_stats" and crashes["left"]:
            crashes["left"] -= 1
            raise SystemError("killed between rows and checkpoint")
        original(self, name, position, events, db)

    monkeypatch.setattr(Projector, "_write_checkpoint", dies_before_checkpoint)
    projector.batch_size = 5
    catch_up(projector)

    stats = tool_stats.tool_stats(db)["image-rotate"]
    assert crashes["left"] == 0
    assert stats.counts == {"completed": len(runs)}
    assert stats.completed_runs == len(runs)
    assert {s.name: s.lag for s in projector.status()} == {
        "status": 0,
        "history": 0,
        "tool_stats": 0,
    }


def test_a_process_killed_between_rows_and_checkpoint_loses_and_repeats_nothing(
    service: ExecutionService, store: EventStore, store_url: str, db_url: str, db: Database
) -> None:
    runs = [complete_run(service, tool="video-trim") for _ in range(10)]
    runs += [failed_run(service, tool="video-trim") for _ in range(5)]
    wait_readable(store)

    crashed = subprocess.run(
        [sys.executable, "-m", "tests.projections.crash_worker", store_url, db_url, "7", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    restarted = Projector(store, db_url, batch_size=7)
    restarted.setup()
    # Before the restart: two tool_stats batches committed, the third died with the process.
    assert {s.name: s.checkpoint for s in restarted.status()}["tool_stats"] == 14

    catch_up(restarted)

    stats = tool_stats.tool_stats(db)["video-trim"]
    assert stats.counts == {"completed": 10, "failed": 5}
    assert stats.executions == len(runs)
    assert stats.completed_runs == 10
    assert db.execute("SELECT count(*) FROM proj_execution_status")[0][0] == len(runs)
    assert all(s.lag == 0 for s in restarted.status())
    restarted.close()


def test_a_nudge_catches_the_read_models_up(
    projector: Projector, service: ExecutionService, store: EventStore, db: Database
) -> None:
    """What the Event Grid receiver does on a delivery: no follower thread runs here, so only the
    nudge can bring the read models to the head."""
    execution_id = complete_run(service)
    wait_readable(store)
    passes: list[int] = []
    real_run_once = projector.run_once

    def counted() -> int:
        applied = real_run_once()
        passes.append(applied)
        return applied

    projector.run_once = counted  # type: ignore[method-assign]
    for _ in range(5):
        projector.nudge()

    deadline = time.monotonic() + 10
    while status.get(db, execution_id) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status.get(db, execution_id).status == "completed"
    time.sleep(0.2)
    assert passes and passes[0] > 0  # the nudge's pass applied them
    assert {s.checkpoint for s in projector.status()} == {head(store)}
