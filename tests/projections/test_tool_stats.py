"""tool_stats: executions per tool by their current status, and p50/p95 of completed runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.database import Database
from projections import tool_stats
from projections.projector import Projector
from services.executions.commands import Cancel, Expire, Fail, Start
from services.executions.service import ExecutionService
from tests.projections.support import LATER, catch_up, complete_run, failed_run, submit


def test_counts_follow_executions_between_statuses(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    waiting = submit(service, tool="pdf-merge", with_input=False)
    catch_up(projector)
    assert tool_stats.tool_stats(db)["pdf-merge"].counts == {"submitted": 1}

    service.handle(waiting, Start("worker-1", datetime.now(UTC), LATER))
    done = complete_run(service, tool="pdf-merge", duration_ms=10)
    failed_run(service, tool="pdf-merge")
    cancelled = submit(service, tool="pdf-merge")
    service.handle(cancelled, Cancel())
    service.handle(done, Expire())
    catch_up(projector)

    stats = tool_stats.tool_stats(db)["pdf-merge"]
    assert stats.counts == {"processing": 1, "expired": 1, "failed": 1, "cancelled": 1}
    assert stats.executions == 4
    assert stats.completed_runs == 1  # the expired one completed in 10 ms
    assert stats.p50_ms == stats.p95_ms == 10


def test_a_failure_with_a_retry_to_come_counts_as_retrying_not_failed(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    execution_id = submit(service, tool="pdf-merge", with_input=False)
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), LATER))
    due = datetime.now(UTC) + timedelta(seconds=30)
    service.handle(execution_id, Fail("timeout", "too slow", True, next_attempt_at=due))
    failed_run(service, tool="pdf-merge")
    catch_up(projector)

    assert tool_stats.tool_stats(db)["pdf-merge"].counts == {"retrying": 1, "failed": 1}


def test_percentiles_per_tool(
    service: ExecutionService, projector: Projector, db: Database
) -> None:
    for ms in range(1, 21):  # 1..20 ms
        complete_run(service, tool="image-rotate", duration_ms=ms)
    complete_run(service, tool="base64-encode", duration_ms=3)
    catch_up(projector)

    stats = tool_stats.tool_stats(db)
    assert (stats["image-rotate"].p50_ms, stats["image-rotate"].p95_ms) == (10, 19)
    assert stats["image-rotate"].counts == {"completed": 20}
    assert (stats["base64-encode"].p50_ms, stats["base64-encode"].p95_ms) == (3, 3)


def test_percentile_is_nearest_rank() -> None:
    assert tool_stats.percentile([], 50) is None
    assert tool_stats.percentile([7], 95) == 7
    assert tool_stats.percentile(list(range(1, 101)), 95) == 95
    assert tool_stats.percentile(list(range(1, 101)), 50) == 50
