"""Contained tool runs (issue 15): what running every tool in a worker process costs and buys.

Three measurements, each beside a baseline run in the same process:

- sync submit latency: ``parts.executions.submit`` of ``base64-encode`` on SQLite in a temp dir
  with local blobs, through the real pool (warmed) and through the same actions, runner, service
  and store with the tool run in the calling thread (``tests.bench.inline_pool``), alternating
  submit by submit so drift falls on both;
- an async burst of a CPU-bound tool (``tests.bench.spin_tool``, ~100 ms of pure Python) run
  from as many threads as runs through ``ToolRunner.run``, each waiting for a worker as a
  Functions invocation does, on a pool of one worker and on a pool of one per CPU, in ABBA order;
- recovery after SIGKILL: a real ``magictoolbox run`` (``tests.e2e.contained.Server``, SQLite)
  with ``test-sleep`` runs processing is killed and restarted; timed from the restart until every
  run is completed over the API, with the default lease (15 s) and sweep (every 5 s).

``tests.bench.contained_report`` prints the figures with their targets, never asserted.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from uuid import UUID

import httpx

from events.opening import open_store
from handlers.bootstrap import Parts, bootstrap
from handlers.settings import given
from services.blobs.local import LocalBlobStore
from services.executions.actions import ExecutionActions
from services.executions.runner import ToolRunner
from services.tools.registry import ToolRegistry, default_registry
from services.workers.pool import WorkerPool
from tests.bench.inline_pool import InlinePool
from tests.bench.pipeline_bench import (
    Latency,
    MachineLoad,
    Progress,
    cpu_times,
    machine_load,
    settle,
)
from tests.bench.spin_tool import BenchSpin, loops_for

OWNER = "bench"
SYNC_TOOL, SYNC_PARAMS = "base64-encode", {"text": "hello"}
BURST_ROUNDS = 4  # per pool, ABBA ABBA: drift and other work on the machine fall on both


@dataclass(frozen=True, slots=True)
class ContainedPlan:
    submits: int = 300  # timed sync submits on each side
    warmup: int = 20  # untimed submits on each side first
    burst: int = 40  # CPU-bound runs on each pool, over its rounds
    spin_ms: float = 100.0  # how long one CPU-bound run computes
    recovery_runs: int = 4
    recovery_sleep: float = 3.0  # each test-sleep run's seconds
    settle_limit: float = 30.0  # at most this long waiting for idle CPUs first


FULL_CONTAINED_PLAN = ContainedPlan()
# The recovery is waiting on the lease (~20 s whatever the size): the smoke test's timeout
# (300 s) allows it, so the quick run keeps it, smaller.
QUICK_CONTAINED_PLAN = ContainedPlan(
    submits=40, warmup=5, burst=8, recovery_runs=2, recovery_sleep=1.0, settle_limit=3.0
)


@dataclass(frozen=True, slots=True)
class BurstRow:
    label: str
    workers: int
    runs: int
    seconds: float
    completed: int
    others_percent: float | None = None  # of all CPU time over its rounds, other processes'

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds


@dataclass(frozen=True, slots=True)
class Recovery:
    runs: int
    processing_at_kill: int
    up_seconds: float  # restart → /healthz answers
    seconds: float  # restart → every run completed (or given up)
    completed: int
    worker_lost: int  # runs whose stream holds a Failed with code worker_lost
    problem: str = ""  # why not every run completed


@dataclass
class ContainedFigures:
    plan: ContainedPlan
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    contained: Latency | None = None
    inline: Latency | None = None
    sync_pool_size: int = 0
    workers_started: int = 0  # by the sync pool over warm-up and timing (recycling shows here)
    sync_not_completed: int = 0
    spin_loops: int = 0
    bursts: list[BurstRow] = field(default_factory=list)
    recovery: Recovery | None = None
    machine: MachineLoad | None = None


# -- a deployment in a temp dir ------------------------------------------------------------------


@contextmanager
def deployment(root: Path) -> Iterator[Parts]:
    """What ``make run`` wires on SQLite, minus the web and the Functions host."""
    url = f"sqlite:///{root / 'app.sqlite3'}"
    store = open_store(url)
    store.setup()
    blobs = LocalBlobStore(root / "blobs", signing_key=b"bench-key")
    blobs.setup()
    registry = ToolRegistry([*default_registry(), BenchSpin()])  # the default one is shared
    parts = bootstrap(given({"DATABASE_URL": url}), store=store, blobs=blobs, registry=registry)
    try:
        yield parts
    finally:
        parts.close()
        store.close()


def inline_actions(parts: Parts) -> ExecutionActions:
    """``parts.executions`` as it was before issue 15: the tool runs in the calling thread."""
    pool = InlinePool(parts.worker_id)
    runner = ToolRunner(
        parts.service,
        parts.blobs,
        parts.registry,
        pool=pool,  # type: ignore[arg-type]  # a fake: its slots run the tool inline
        lease_seconds=parts.settings.LEASE_SECONDS,
        retry_backoff=parts.retry_backoff,
        progress_interval=parts.progress_interval,
    )
    return ExecutionActions(parts.service, parts.registry, parts.blobs, lambda: runner)


# -- 1. sync submit latency ----------------------------------------------------------------------


def measure_sync(parts: Parts, plan: ContainedPlan, figures: ContainedFigures) -> None:
    pool = parts.pool()
    pool.warm()
    sides = {"contained": parts.executions, "inline": inline_actions(parts)}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    not_completed = 0

    def submit(name: str) -> float:
        nonlocal not_completed
        started = time.perf_counter()
        done = sides[name].submit(OWNER, SYNC_TOOL, SYNC_PARAMS).execution
        took = (time.perf_counter() - started) * 1000
        not_completed += done.state.status != "completed"
        return took

    for _ in range(plan.warmup):
        for name in sides:
            submit(name)
    for index in range(plan.submits):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))  # ABBA: no side first
        for name in order:
            samples[name].append(submit(name))
    figures.contained = Latency(tuple(samples["contained"]))
    figures.inline = Latency(tuple(samples["inline"]))
    figures.sync_pool_size = pool.size
    figures.workers_started = pool.started
    figures.sync_not_completed = not_completed


# -- 2. async burst of a CPU-bound tool ----------------------------------------------------------


def burst(parts: Parts, runner: ToolRunner, runs: int, loops: int) -> tuple[float, int]:
    """``runs`` submitted, then run from one thread each; the seconds from the threads' start to
    the last run's end, and how many completed."""
    ids = [
        parts.executions.submit(OWNER, BenchSpin.slug, {"loops": loops}).execution.id
        for _ in range(runs)
    ]
    outcomes: list[str] = []

    def invoke(execution_id: UUID) -> None:
        outcomes.append(runner.run(execution_id).outcome)

    threads = [threading.Thread(target=invoke, args=(i,)) for i in ids]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, outcomes.count("completed")


def measure_burst(parts: Parts, plan: ContainedPlan, figures: ContainedFigures) -> None:
    cpus = figures.cpus
    figures.spin_loops = loops = loops_for(plan.spin_ms)
    pools = {
        "WorkerPool(1)": WorkerPool(1, process_id=parts.worker_id),
        f"WorkerPool({cpus}, per_owner={cpus})": WorkerPool(
            cpus, process_id=parts.worker_id, per_owner=cpus
        ),
    }
    try:
        runners = {}
        for label, pool in pools.items():
            pool.warm()
            runners[label] = runner = ToolRunner(
                parts.service,
                parts.blobs,
                parts.registry,
                pool=pool,
                lease_seconds=parts.settings.LEASE_SECONDS,
            )
            burst(parts, runner, pool.size, loops)  # each worker imports the tool's module
        tallies = {label: _Tally() for label in pools}
        first, second = list(pools)
        order = [first, second, second, first] * (BURST_ROUNDS // 2)  # ABBA ABBA
        shares = [
            plan.burst // BURST_ROUNDS + (k < plan.burst % BURST_ROUNDS)
            for k in range(BURST_ROUNDS)
        ]
        for label in order:
            ours = [os.getpid(), *(pid for pool in pools.values() for pid in pool.pids())]
            machine, mine = cpu_times(), _ticks(ours)
            runs = shares[tallies[label].rounds]
            seconds, completed = burst(parts, runners[label], runs, loops)
            tallies[label].add(runs, seconds, completed, machine, cpu_times(), _ticks(ours) - mine)
        for label, t in tallies.items():
            figures.bursts.append(
                BurstRow(label, pools[label].size, t.runs, t.seconds, t.completed, t.others())
            )
    finally:
        for pool in pools.values():
            pool.close()


@dataclass
class _Tally:
    """One pool's rounds, added up, with what the whole machine did meanwhile."""

    rounds: int = 0
    runs: int = 0
    seconds: float = 0.0
    completed: int = 0
    busy: int = 0  # CPU ticks the machine spent busy
    total: int = 0  # CPU ticks there were (all CPUs)
    ours: int = 0  # CPU ticks of this process and its tool workers

    def add(
        self,
        runs: int,
        seconds: float,
        completed: int,
        before: list[int] | None,
        after: list[int] | None,
        ours: int,
    ) -> None:
        self.rounds += 1
        self.runs += runs
        self.seconds += seconds
        self.completed += completed
        if before and after and len(after) > 7:
            delta = [b - a for a, b in zip(before, after, strict=False)][:8]
            self.total += sum(delta)
            self.busy += sum(delta) - delta[3] - delta[4]  # less idle and iowait
            self.ours += ours

    def others(self) -> float | None:
        """The share of all CPU time that other processes took (None: no /proc/stat)."""
        return 100 * max(0, self.busy - self.ours) / self.total if self.total else None


def _ticks(pids: list[int]) -> int:
    """User + system CPU ticks of these processes so far (one gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


# -- 3. recovery after SIGKILL -------------------------------------------------------------------


def measure_recovery(plan: ContainedPlan, root: Path, progress: Progress) -> Recovery:
    # The e2e helpers import the web's test support: only this measurement needs them.
    from tests.e2e.contained import Server, client, create_users, server_env, wait_finished

    # A worker per run, so every run is processing when the server dies (one owner may take
    # every free worker when nobody else waits). The lease and the sweep are the defaults, set
    # so that none this environment may hold applies.
    defaults = given({})
    env = server_env(
        root,
        f"sqlite:///{root / 'app.sqlite3'}",
        TOOL_WORKERS=str(plan.recovery_runs),
        LEASE_SECONDS=str(defaults.LEASE_SECONDS),
        SWEEP_SCHEDULE=defaults.SWEEP_SCHEDULE,
    )
    log = root / "server.log"
    server = Server(env, log)
    try:
        token = create_users(env, OWNER)[OWNER]
        with client(server.url, token) as api:
            ids = []
            for _ in range(plan.recovery_runs):
                answer = api.post(
                    "/api/v1/executions/",
                    json={"tool": "test-sleep", "params": {"seconds": plan.recovery_sleep}},
                )
                answer.raise_for_status()
                ids.append(answer.json()["id"])
            processing = _wait_processing(api, ids, timeout=30)
        progress(f"contained: {processing} runs processing; SIGKILL, restart, waiting for all")
        server.kill()
        restarted = time.monotonic()
        server = Server(env, log)
        up = time.monotonic() - restarted
        problem = ""
        with client(server.url, token) as api:
            try:
                done = wait_finished(api, ids, timeout=120)
            except AssertionError as exc:
                done, problem = {}, str(exc)
            seconds = time.monotonic() - restarted
            lost = sum(1 for i in ids if "worker_lost" in _failure_codes(api, i))
        completed = sum(1 for body in done.values() if body.get("status") == "completed")
        return Recovery(len(ids), processing, up, seconds, completed, lost, problem)
    finally:
        server.stop()


def _wait_processing(api: httpx.Client, ids: list[str], timeout: float) -> int:
    """Until every run is processing (or the timeout): how many are."""
    deadline = time.monotonic() + timeout
    while True:
        states = [api.get(f"/api/v1/executions/{i}/").json()["status"] for i in ids]
        processing = states.count("processing")
        if processing == len(ids) or time.monotonic() > deadline:
            return processing
        time.sleep(0.05)


def _failure_codes(api: httpx.Client, execution_id: str) -> list[str]:
    events = api.get(f"/api/v1/executions/{execution_id}/events/").json()
    return [e["data"].get("code") for e in events if e["type"].endswith(".Failed")]


# -- the section ---------------------------------------------------------------------------------


def measure_contained(
    plan: ContainedPlan, progress: Progress = lambda step: None
) -> ContainedFigures:
    figures = ContainedFigures(plan)
    progress("contained: waiting for the CPUs to settle")
    idle, waited = settle(limit=plan.settle_limit)
    load_before, cpu_before = os.getloadavg()[0], cpu_times()
    with tempfile.TemporaryDirectory(prefix="mt-contained-bench-") as tmp:
        root = Path(tmp)
        progress(f"contained: sync submits, {plan.submits} each side, contained and inline")
        with deployment(root / "sync") as parts:
            measure_sync(parts, plan, figures)
        progress(f"contained: CPU-bound bursts of {plan.burst} runs on 1 and on {figures.cpus}")
        with deployment(root / "burst") as parts:
            measure_burst(parts, plan, figures)
        figures.machine = replace(
            machine_load(load_before, cpu_before), idle_at_start=idle, settled_after=waited
        )
        progress("contained: recovery after SIGKILL (magictoolbox run, default lease)")
        (root / "recovery").mkdir()
        figures.recovery = measure_recovery(plan, root / "recovery", progress)
    return figures
