"""The async pipeline on PostgreSQL, end to end, beside a Celery + Redis baseline in the same run.

Ours is what ``make run`` wires, minus the projector: a fresh-schema event store, local blobs, a
registry with one no-op async tool and the local Functions host running the real
``function_app.py``. Latency is one execution at a time, from before ``submit`` to its stream
holding ``Completed``; the burst submits thousands from 4 threads and times the first submit to
the last ``Completed`` seen on the feed, then checks on the feed that each execution has exactly
one ``Processing`` and one ``Completed``. Celery runs a no-op task the same ways
(``tests.bench.celery_baseline``); latency rounds alternate between the two and Celery's burst
sits between ours, so drift on this small VM (CPU steal comes and goes) falls on both. Then a
fresh process measures the memory a 500 MB upload costs (``tests.bench.upload_memory``). The
section is printed by ``tests.bench.pipeline_report``, targets beside the figures, never asserted.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from events.catalog import Completed, Processing
from events.envelope import execution_stream
from handlers.bootstrap import bootstrap
from handlers.function_app import create
from handlers.host import LocalFunctionsHost
from handlers.settings import given
from services.blobs.local import LocalBlobStore
from services.executions.decider import TERMINAL, Status, execution
from services.tools.base import BaseTool, OutputKind, ToolContext
from services.tools.registry import ToolRegistry
from tests.bench import celery_baseline, upload_memory
from tests.bench.places import PostgresSchemas

TIMERS_OFF = {
    "SWEEP_SCHEDULE": "0 0 0 * * *",
    "RETENTION_SCHEDULE": "0 0 0 * * *",
    "RELAY_SCHEDULE": "0 0 0 * * *",
    "WEBHOOKS_SCHEDULE": "0 0 0 * * *",
}
SUBMITTERS = 4
FEED_BATCH = 1000
FOLLOW_INTERVAL = 0.02  # the burst's feed follower reads at most this often (s) when caught up
COMPLETED, PROCESSING = Completed.event_type(), Processing.event_type()
Progress = Callable[[str], None]
T = TypeVar("T")


class BenchNoop(BaseTool):
    slug = "bench-noop"
    name = "Bench no-op"
    category = "data"
    mode = "async"
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("ok")


@dataclass(frozen=True, slots=True)
class Plan:
    latency_runs: int
    warmup: int
    burst: int
    workers: tuple[int, ...]
    upload_mb: int


FULL_PLAN = Plan(latency_runs=300, warmup=20, burst=5_000, workers=(4, 8), upload_mb=500)
QUICK_PLAN = Plan(latency_runs=30, warmup=10, burst=1_000, workers=(4,), upload_mb=100)


@dataclass(frozen=True, slots=True)
class Latency:
    samples_ms: tuple[float, ...]

    def at(self, q: float) -> float:
        """Nearest-rank percentile (q in 0..1)."""
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    def line(self) -> str:
        return (
            f"p50 {self.p50:6.2f} ms  p95 {self.at(0.95):6.2f} ms  p99 {self.at(0.99):6.2f} ms"
            f"  max {max(self.samples_ms):6.2f} ms"
        )


@dataclass(frozen=True, slots=True)
class Burst:
    label: str
    workers: int
    count: int
    seconds: float
    submit_seconds: float  # until the last submit returned
    complete: int  # executions with exactly one Processing and one Completed
    duplicated: int  # executions with more than one of either
    missing: int  # executions without a Completed (or a Processing)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


@dataclass
class PipelineFigures:
    latency: Latency | None = None
    bursts: list[Burst] = field(default_factory=list)
    celery_latency: Latency | None = None
    celery_burst: celery_baseline.CeleryBurst | None = None
    celery_skipped: str = ""  # why there are no (or only some) Celery figures
    memory: upload_memory.MemoryFigures | None = None
    memory_skipped: str = ""
    machine: MachineLoad | None = None

    @property
    def best_burst(self) -> Burst | None:
        return max(self.bursts, key=lambda b: b.per_second, default=None)


@dataclass(frozen=True, slots=True)
class MachineLoad:
    """What else took the CPUs while we measured: load averages and the hypervisor's steal."""

    load_before: float
    load_after: float
    steal_percent: float | None  # of all CPU time over the measurements (Linux /proc/stat)
    idle_at_start: float | None = None  # % of CPU idle in the second before measuring
    settled_after: float = 0.0  # seconds waited for the previous section's work to die down


def cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def _idle_percent(seconds: float = 1.0) -> float | None:
    before = cpu_times()
    time.sleep(seconds)
    after = cpu_times()
    if not before or not after or len(after) < 5:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    return 100 * (delta[3] + delta[4]) / max(1, sum(delta[:8]))  # idle + iowait


def settle(limit: float = 30.0, idle: float = 85.0) -> tuple[float | None, float]:
    """Wait (at most ``limit`` s) until the CPUs are mostly idle: the sections before this one
    leave work behind (PostgreSQL checkpoints, autovacuum) that would land on the first rounds.
    Returns the last idle sample and the seconds waited."""
    started = time.monotonic()
    sample = _idle_percent()
    while sample is not None and sample < idle and time.monotonic() - started < limit:
        sample = _idle_percent()
    return sample, time.monotonic() - started


def machine_load(load_before: float, cpu_before: list[int] | None) -> MachineLoad:
    cpu_after = cpu_times()
    steal = None
    if cpu_before and cpu_after and len(cpu_after) > 7:
        delta = [b - a for a, b in zip(cpu_before, cpu_after, strict=False)]
        steal = 100 * delta[7] / max(1, sum(delta[:8]))  # user … steal; guests are in user
    return MachineLoad(load_before, os.getloadavg()[0], steal)


class Pipeline:
    """One embedded deployment on a fresh schema: store, blobs, no-op tool, Functions host."""

    def __init__(self, schemas: PostgresSchemas, name: str, root: Path, workers: int) -> None:
        self.store = schemas.open_store(name)
        db_url = f"{schemas.url}{'&' if '?' in schemas.url else '?'}schema={schemas.prefix}_{name}"
        self.blobs = LocalBlobStore(root / name, signing_key=b"k")
        self.blobs.setup()
        self.registry = ToolRegistry([BenchNoop()])
        settings = given({"DATABASE_URL": db_url, **TIMERS_OFF})
        self.parts = bootstrap(settings, store=self.store, blobs=self.blobs, registry=self.registry)
        self.service = self.parts.service
        self.workers = workers
        self.seen_position = 0  # the last Completed waited for: the feed is followed from here
        self.host = LocalFunctionsHost(
            create(lambda: self.parts),
            self.store,
            self.parts.deadletters(),
            settings=TIMERS_OFF,
            workers=workers,
            timers=False,
            start_position=self.store.head_position(),
        )

    def __enter__(self) -> Pipeline:
        self.host.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.host.stop()
        finally:
            self.parts.close()
            self.store.close()

    def submit(self) -> UUID:
        return self.parts.executions.submit("bench", "bench-noop").execution.id

    def wait_completed(self, execution_id: UUID, timeout: float = 30.0) -> None:
        """Until the stream holds Completed: woken by each new event, never a fixed sleep.

        Only this execution is being written meanwhile, so any event past the stream's last one
        is its next: waiting for the feed to pass that position cannot miss it (and costs one
        query per wake-up less than reading the feed's head first).
        """
        deadline = time.monotonic() + timeout
        while True:
            events = self.service.history(execution_id)
            status = execution.fold(e.payload() for e in events).status
            if status is Status.COMPLETED:
                self.seen_position = max(self.seen_position, events[-1].position)
                return
            if status in TERMINAL:
                raise RuntimeError(f"{execution_id} ended {status.value}, not completed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{execution_id} is {status.value} after {timeout:g} s")
            self.store.wait_for(events[-1].position, remaining)

    def one_at_a_time(self, runs: int) -> list[float]:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            self.wait_completed(self.submit())
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    def burst(self, count: int, timeout: float = 300.0) -> Burst:
        # The feed's readable head may trail the warm-up's last Completed by a moment: start
        # past both, so no warm-up event is counted as the burst's.
        after = max(self.store.head_position(), self.seen_position)
        submitted: list[list[UUID]] = [[] for _ in range(SUBMITTERS)]
        errors: list[BaseException] = []
        finished = [0.0] * SUBMITTERS

        def submitter(index: int, n: int) -> None:
            try:
                submitted[index].extend(self.submit() for _ in range(n))
            except BaseException as exc:  # reported below; the feed wait ends at its deadline
                errors.append(exc)
            finished[index] = time.perf_counter() - started

        shares = [count // SUBMITTERS + (i < count % SUBMITTERS) for i in range(SUBMITTERS)]
        threads = [threading.Thread(target=submitter, args=(i, n)) for i, n in enumerate(shares)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        done, position, deadline = 0, after, time.monotonic() + timeout
        while done < count and not errors and time.monotonic() < deadline:
            events = self.store.read_all(position, limit=FEED_BATCH)
            if events:
                done += sum(1 for e in events if e.type == COMPLETED)
                position = events[-1].position
            if len(events) < FEED_BATCH and done < count:
                # Paced, not woken per append: this thread shares the GIL with the host's workers.
                time.sleep(FOLLOW_INTERVAL)
        seconds = time.perf_counter() - started
        for thread in threads:
            thread.join()
        submit_seconds = max(finished)
        if errors:
            raise errors[0]
        ids = {execution_stream(i) for share in submitted for i in share}
        processing, completed = self._counts(after)
        duplicated = sum(1 for s in ids if processing[s] > 1 or completed[s] > 1)
        complete = sum(1 for s in ids if processing[s] == 1 and completed[s] == 1)
        missing = sum(1 for s in ids if not processing[s] or not completed[s])
        label = f"ours, {self.workers} host workers"
        counts = (len(ids), seconds, submit_seconds, complete, duplicated, missing)
        return Burst(label, self.workers, *counts)

    def _counts(self, after: int) -> tuple[Counter[str], Counter[str]]:
        """Processing and Completed events per stream on the feed after ``after``."""
        processing: Counter[str] = Counter()
        completed: Counter[str] = Counter()
        while events := self.store.read_all(after, limit=5000, types=[PROCESSING, COMPLETED]):
            for e in events:
                (completed if e.type == COMPLETED else processing)[e.stream] += 1
            after = events[-1].position
        return processing, completed


ROUNDS = 3  # latency rounds, ours and Celery's alternating


class CelerySide:
    """The baseline's worker while it works; after a failure, why (it never fails the bench)."""

    def __init__(self, stack: ExitStack, progress: Progress) -> None:
        self.worker: celery_baseline.CeleryWorker | None = None
        self.skipped = celery_baseline.unavailable()
        if not self.skipped:
            progress("pipeline: starting a Celery worker")
            try:
                self.worker = stack.enter_context(celery_baseline.CeleryWorker())
            except RuntimeError as exc:
                self.skipped = str(exc)

    def latency_ms(self, runs: int) -> list[float]:
        return self._do(lambda worker: worker.latency_ms(runs)) or []

    def burst(self, count: int) -> celery_baseline.CeleryBurst | None:
        return self._do(lambda worker: worker.burst(count, SUBMITTERS))

    def _do(self, step: Callable[[celery_baseline.CeleryWorker], T]) -> T | None:
        if self.worker is None:
            return None
        try:
            return step(self.worker)
        except Exception as exc:
            self.skipped = f"the Celery baseline failed: {type(exc).__name__}: {exc}"
            self.worker = None
            return None


def measure_pipeline(
    url: str, plan: Plan, progress: Progress = lambda step: None
) -> PipelineFigures:
    """Ours and Celery's, interleaved; then the upload's memory in a fresh process."""
    figures = PipelineFigures()
    progress("pipeline: waiting for the CPUs to settle")
    idle, waited = settle()
    load_before, cpu_before = os.getloadavg()[0], cpu_times()
    with ExitStack() as stack:
        celery = CelerySide(stack, progress)
        schemas = stack.enter_context(PostgresSchemas(url))
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mt-bench-")))
        progress(f"pipeline: latency, {plan.latency_runs} executions one at a time, each side")
        ours: list[float] = []
        theirs: list[float] = []
        with Pipeline(schemas, "pipe_latency", root, workers=plan.workers[0]) as pipeline:
            pipeline.one_at_a_time(plan.warmup)
            celery.latency_ms(plan.warmup)
            for index in range(ROUNDS):
                runs = plan.latency_runs // ROUNDS + (index < plan.latency_runs % ROUNDS)
                ours += pipeline.one_at_a_time(runs)
                theirs += celery.latency_ms(runs)
        figures.latency = Latency(tuple(ours))
        celery_burst = None
        for index, workers in enumerate(plan.workers):
            progress(f"pipeline: burst of {plan.burst:,} executions, {workers} host workers")
            with Pipeline(schemas, f"pipe_burst{workers}", root, workers=workers) as pipeline:
                pipeline.one_at_a_time(plan.warmup)
                figures.bursts.append(pipeline.burst(plan.burst))
            if index == 0 and celery.worker is not None:
                progress(f"pipeline: Celery burst of {plan.burst:,} tasks")
                celery_burst = celery.burst(plan.burst)
        if celery.worker is not None:  # every Celery step worked
            figures.celery_latency, figures.celery_burst = Latency(tuple(theirs)), celery_burst
        figures.celery_skipped = celery.skipped
    figures.machine = replace(
        machine_load(load_before, cpu_before), idle_at_start=idle, settled_after=waited
    )
    progress(f"pipeline: memory while streaming a {plan.upload_mb} MB upload")
    figures.memory, figures.memory_skipped = upload_memory.measure_in_subprocess(plan.upload_mb)
    return figures
