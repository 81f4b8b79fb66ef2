"""``magictoolbox sweep`` finds candidates in the status read model and lets the decider act."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from events.store import EventStore
from projections.projector import Projector
from services.blobs.local import LocalBlobStore
from services.executions.commands import Complete, Start, Submit
from services.executions.decider import Status
from services.executions.service import ExecutionService
from tests.events.factories import blob
from tests.projections.support import wait_readable
from tests.web.support import run_cli

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def test_sweep_times_out_stuck_attempts_and_expires_old_results(
    store: EventStore, store_url: str, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", signing_key=b"k")
    blobs.setup()
    output = blobs.put("processed", "done/result.pdf", [b"%PDF-1.7 result"], content_type="x/y")
    service = ExecutionService(store, clock=lambda: T0)
    stuck, done, fresh = uuid4(), uuid4(), uuid4()
    for eid in (stuck, done, fresh):
        service.handle(eid, Submit(eid, "pdf-merge", "pdf", "1", "async", "7"))
        service.handle(eid, Start("worker-1", T0, timedelta(minutes=5)))
    service.handle(done, Complete(duration_ms=10, output=output))
    later = ExecutionService(store, clock=lambda: T0 + timedelta(days=40))
    later.handle(fresh, Complete(duration_ms=10, output=blob("processed")))
    projector = Projector(store, store_url)
    projector.setup()
    wait_readable(store)
    while projector.run_once():
        pass
    projector.close()

    now = (T0 + timedelta(days=40, minutes=1)).isoformat()
    swept = run_cli(
        "sweep", "--now", now, "--store", store_url, "--db", store_url,
        BLOB_STORAGE=str(tmp_path / "blobs"),
    )  # fmt: skip

    assert swept.returncode == 0, swept.stderr
    assert "timed out 1 of 1 processing; retried 0 of 0 failed;" in swept.stdout
    assert "expired 1 of 2 finished" in swept.stdout
    assert f"timeout  {stuck}" in swept.stdout and f"expired  {done}" in swept.stdout
    state = service.load(stuck).state
    assert (state.status, state.error.code, state.error.retryable) == (
        Status.FAILED,
        "timeout",
        True,
    )
    expired = service.load(done).state
    assert expired.status is Status.EXPIRED
    assert expired.blobs_removed == (output,)
    assert not blobs.exists("processed", "done/result.pdf")
    assert service.load(fresh).state.status is Status.COMPLETED  # 30 days have not passed
