"""history.recent: an owner's last runs, newest first, at most ``limit``, nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.database import Database
from projections import history
from projections.projector import Projector
from services.executions.commands import Fail, Start
from services.executions.service import ExecutionService
from tests.projections.support import LATER, catch_up, complete_run, failed_run, submit


def ticking_clock(start: datetime):
    """A clock that moves one second per call, so that submission times are distinct."""
    now = [start]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)
        return now[0]

    return clock


def test_recent_is_the_owners_newest_runs_first_at_most_ten(
    store, projector: Projector, db: Database
) -> None:
    service = ExecutionService(store, clock=ticking_clock(datetime(2030, 1, 1, tzinfo=UTC)))
    mine = [complete_run(service, owner="alice", tool=f"tool-{i % 2}") for i in range(12)]
    theirs = [complete_run(service, owner="bob") for _ in range(3)]
    catch_up(projector)

    runs = history.recent(db, "alice")

    assert [r.execution_id for r in runs] == [str(e) for e in reversed(mine)][:10]
    assert all(r.owner == "alice" for r in runs)
    assert not {r.execution_id for r in runs} & {str(e) for e in theirs}
    assert runs[0].submitted_at > runs[-1].submitted_at
    assert {r.status for r in runs} == {"completed"}
    assert all(r.finished_at is not None for r in runs)


def test_recent_by_tool_and_limit(store, projector: Projector, db: Database) -> None:
    service = ExecutionService(store, clock=ticking_clock(datetime(2030, 1, 1, tzinfo=UTC)))
    rotates = [complete_run(service, owner="alice", tool="image-rotate") for _ in range(4)]
    complete_run(service, owner="alice", tool="pdf-merge")
    failed = failed_run(service, owner="alice", tool="image-rotate")
    waiting = submit(service, owner="alice", tool="image-rotate")
    catch_up(projector)

    runs = history.recent(db, "alice", tool="image-rotate", limit=3)

    assert [r.execution_id for r in runs] == [str(waiting), str(failed), str(rotates[-1])]
    assert [r.status for r in runs] == ["submitted", "failed", "completed"]
    assert runs[0].finished_at is None
    assert history.recent(db, "nobody") == []


def test_a_failure_with_a_retry_to_come_is_listed_as_retrying_and_unfinished(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service, owner="alice", with_input=False)
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    due = datetime.now(UTC) + timedelta(seconds=30)
    service.handle(execution_id, Fail("timeout", "too slow", True, next_attempt_at=due))
    catch_up(projector)

    [run] = history.recent(db, "alice")
    assert (run.status, run.finished_at) == ("retrying", None)
    assert history.recent(db, "alice", status="failed") == []
