"""The worker pool on its own: fair turns between owners, a bounded queue for sync requests,
recycled and replaced workers. Real worker processes; the jobs are a test tool's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from services.tools.base import BaseTool, OutputKind, ToolContext
from services.workers.child import Done, Job
from services.workers.limits import Limits
from services.workers.pool import PoolBusy, PoolClosed, WorkerPool


class Echo(BaseTool):
    slug = "test-pool-echo"
    name = "Echo"
    category = "data"
    mode = "sync"
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("echo")


def job(tmp_path: Path) -> Job:
    scratch = tmp_path / f"scratch-{time.monotonic_ns()}"
    scratch.mkdir()
    return Job(Echo(), {}, None, str(scratch), Limits.of(Echo()))


@pytest.fixture
def pool() -> WorkerPool:
    made = WorkerPool(1, process_id="pool-test", per_owner=1, queue_limit=2, max_runs=3, nice=0)
    yield made
    made.close()


def _take_in_order(
    pool: WorkerPool, owners: list[str], order: list[str], *, sync: bool = False
) -> list[threading.Thread]:
    """One thread per owner, each waiting for the pool's one worker, started in this order."""
    threads = []
    for owner in owners:

        def take(owner: str = owner) -> None:
            with pool.acquire(owner, sync=sync):
                order.append(owner)
                time.sleep(0.02)

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while pool.stats()["waiting"] < len(threads) and time.monotonic() < deadline:
            time.sleep(0.005)
    return threads


def test_another_owner_goes_before_an_owner_who_has_had_their_share(pool: WorkerPool) -> None:
    held = pool.acquire("alice")
    order: list[str] = []
    threads = _take_in_order(pool, ["alice", "alice", "alice", "bob"], order)
    held.release()
    for thread in threads:
        thread.join(10)
    assert order == ["bob", "alice", "alice", "alice"]


def test_a_lone_owner_gets_every_worker() -> None:
    pool = WorkerPool(2, process_id="pool-test", per_owner=1, nice=0)
    try:
        first = pool.acquire("alice")
        second = pool.acquire("alice", timeout=2)  # nobody else waits: past the share
        assert {first.worker.pid, second.worker.pid} == set(pool.pids())
        first.release()
        second.release()
    finally:
        pool.close()


def test_sync_requests_past_the_queue_are_refused_at_once(pool: WorkerPool) -> None:
    held = pool.acquire("alice")
    order: list[str] = []
    waiting = _take_in_order(pool, ["bob", "carol"], order, sync=True)  # the queue of 2 is full
    started = time.monotonic()
    with pytest.raises(PoolBusy) as refused:
        pool.acquire("dave", sync=True)
    assert time.monotonic() - started < 0.5 and refused.value.retry_after >= 1
    held.release()
    for thread in waiting:
        thread.join(10)
    assert order == ["bob", "carol"]
    with pool.acquire("erin", timeout=5):  # async work is not refused: it waits its turn
        pass


def test_workers_are_recycled_after_their_runs_and_replaced_when_killed(
    pool: WorkerPool, tmp_path: Path
) -> None:
    pids = []
    for _ in range(4):
        with pool.acquire("alice") as slot:
            assert isinstance(slot.run(job(tmp_path), deadline=time.monotonic() + 10), Done)
            pids.append(slot.worker.pid)
    assert pids[:3] == [pids[0]] * 3 and pids[3] != pids[0]  # max_runs=3, then a fresh one
    with pool.acquire("alice") as slot:
        slot.worker.kill()
    with pool.acquire("alice") as slot:
        assert isinstance(slot.run(job(tmp_path), deadline=time.monotonic() + 10), Done)
        assert slot.worker.pid != pids[3]


def test_a_closed_pool_refuses_and_wakes_its_waiters(pool: WorkerPool) -> None:
    held = pool.acquire("alice")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.acquire("bob")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    time.sleep(0.1)
    pool.close()
    thread.join(5)
    assert [type(e) for e in errors] == [PoolClosed]
    held.release()
    with pytest.raises(PoolClosed):
        pool.acquire("carol")


def test_a_sync_request_that_would_mostly_wait_is_told_to_come_back(pool: WorkerPool) -> None:
    for _ in range(10):
        pool._observe(4.0)  # runs have been taking about 4 s lately
    held = pool.acquire("alice")
    order: list[str] = []
    waiting = _take_in_order(pool, ["bob"], order, sync=True)  # waits about 4 s: within 5
    with pytest.raises(PoolBusy) as refused:
        pool.acquire("carol", sync=True, budget=5.0)  # would wait about 8 s
    assert refused.value.retry_after >= 7
    with pytest.raises(PoolBusy):
        pool.acquire("carol", sync=True, budget=5.0)
    held.release()
    waiting[0].join(10)
    assert order == ["bob"]
    with pool.acquire("carol", sync=True, budget=5.0):  # a free worker: no wait to judge
        pass
