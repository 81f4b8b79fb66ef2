"""rebuild: replay a projection into fresh tables and swap them in, checkpoint included."""

from __future__ import annotations

import pytest

from events.database import Database
from events.store import EventStore
from projections import history, status, tool_stats
from projections.projector import Projector
from projections.rebuild import rebuild
from projections.registry import ALL
from services.executions.service import ExecutionService
from tests.projections.support import catch_up, complete_run, failed_run, head, snapshot


def index_names(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = ?", (db.schema,))
    return {r[0] for r in rows}


def test_rebuild_repairs_damaged_rows_and_keeps_indexes(
    service: ExecutionService, store: EventStore, projector: Projector, db: Database, db_url: str
) -> None:
    runs = [complete_run(service, owner="alice") for _ in range(5)]
    catch_up(projector)
    good = snapshot(db, status.PROJECTION)
    db.execute("DELETE FROM proj_execution_status WHERE execution_id = ?", (str(runs[0]),))
    db.execute("UPDATE proj_execution_status SET status = 'failed'")

    seen: list[tuple[int, int]] = []
    result = rebuild(store, db_url, "status", progress=lambda p, h: seen.append((p, h)))

    assert snapshot(db, status.PROJECTION) == good
    assert result.position == head(store) and result.events == head(store)
    assert seen[-1] == (head(store), head(store))
    assert {s.name: s.checkpoint for s in projector.status()}["status"] == head(store)
    names = index_names(db)
    assert {"proj_history_owner", "proj_history_owner_tool"} <= names
    assert not [n for n in names if n.startswith("rb_")]


def test_rebuilding_twice_then_carrying_on(
    service: ExecutionService, store: EventStore, projector: Projector, db: Database, db_url: str
) -> None:
    complete_run(service, owner="alice", tool="pdf-merge")
    catch_up(projector)
    for name in ALL:
        rebuild(store, db_url, name, batch_size=2)
        rebuild(store, db_url, name, batch_size=3)  # the first swap left no name in the way

    # Events appended after the rebuild are applied by the projector, once.
    failed_run(service, owner="alice", tool="pdf-merge")
    catch_up(projector)
    assert [r.status for r in history.recent(db, "alice")] == ["failed", "completed"]
    assert tool_stats.tool_stats(db)["pdf-merge"].counts == {"completed": 1, "failed": 1}
    assert all(s.lag == 0 for s in projector.status())
    names = index_names(db)
    assert {"proj_history_owner", "proj_history_owner_tool"} <= names


def test_rebuild_of_an_empty_feed_and_of_an_unknown_projection(
    store: EventStore, db_url: str, db: Database
) -> None:
    result = rebuild(store, db_url, "history")
    assert (result.events, result.position) == (0, 0)
    assert history.recent(db, "anyone") == []
    with pytest.raises(KeyError):
        rebuild(store, db_url, "no-such-projection")
