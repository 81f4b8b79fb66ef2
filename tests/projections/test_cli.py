"""``magictoolbox projections status`` and ``magictoolbox rebuild``, run as a user runs them."""

from __future__ import annotations

from events.database import Database
from events.store import EventStore
from projections import tool_stats
from projections.projector import Projector
from services.executions.service import ExecutionService
from tests.projections.support import catch_up, complete_run, head, wait_readable
from tests.web.support import run_cli


def lines_by_name(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in output.splitlines()[1:]}


def test_status_prints_checkpoint_head_and_lag(
    service: ExecutionService, store: EventStore, store_url: str, projector: Projector
) -> None:
    complete_run(service)
    catch_up(projector)
    complete_run(service)
    wait_readable(store)

    result = run_cli("projections", "status", "--store", store_url, "--db", store_url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == [
        "reader",
        "checkpoint",
        "head",
        "lag",
        "last",
        "error",
    ]
    rows = lines_by_name(result.stdout)
    assert set(rows) == {"status", "history", "tool_stats"}
    for name in rows:
        assert rows[name][1:5] == ["4", str(head(store)), "4", "-"]


def test_rebuild_all_replays_every_projection(
    service: ExecutionService, store: EventStore, store_url: str, db: Database
) -> None:
    for _ in range(3):
        complete_run(service, tool="pdf-merge")
    wait_readable(store)

    result = run_cli("rebuild", "--all", "--store", store_url, "--db", store_url)

    assert result.returncode == 0, result.stderr
    for name in ("status", "history", "tool_stats"):
        assert f"rebuilt {name}: 12 events, checkpoint {head(store)}" in result.stdout
        assert f"{name}: 100% ({head(store)}/{head(store)})" in result.stdout
    assert tool_stats.tool_stats(db)["pdf-merge"].counts == {"completed": 3}


def test_rebuild_refuses_an_unknown_projection(store_url: str) -> None:
    result = run_cli("rebuild", "nope", "--store", store_url, "--db", store_url)
    assert result.returncode == 2
    assert "unknown projection 'nope'" in result.stderr
