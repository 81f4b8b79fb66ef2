"""The benchmark still runs: the quick run on both backends gives figures (the batch baseline's
row among them) and reads back all; the quick pipeline run completes every execution exactly once;
a tiny Azure-path run publishes every event once and times executions in both modes; the quick
contained-runs section completes every sync submit, both bursts and, after a SIGKILL, every run
the lease sweep recovers.

No timing is asserted here; ``python -m tests.bench`` is where figures are read.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench import (
    contained_bench,
    contained_report,
    eventgrid_bench,
    pipeline_bench,
    pipeline_report,
    webhook_bench,
)
from tests.bench.backends import run_postgres, run_sqlite
from tests.bench.baseline import BATCH_LABEL
from tests.bench.report import Section, render
from tests.bench.store_bench import WRITER_COUNTS
from tests.bench.timing import QUICK
from tests.conftest import require_postgres


def _assert_figures(section: Section, with_library: bool) -> None:
    contenders = [section.baseline, section.store] + ([section.library] if with_library else [])
    for by_writers in contenders:
        assert sorted(by_writers) == sorted(WRITER_COUNTS)
        for rounds in by_writers.values():
            assert len(rounds.rates) == QUICK.rounds
            assert all(rate.events > 0 for rate in rounds.rates)
    for row in section.rows:
        assert row.rate.events > 0, row
        assert row.rate.per_second > 0, row
    for batch in (section.batch_baseline, section.batch_store):
        assert batch is not None
        assert len(batch.rates) == QUICK.rounds
        assert all(rate.events > 0 for rate in batch.rates)
    labels = [row.label for row in section.rows]
    assert BATCH_LABEL in labels  # the batch baseline row (positive, as every row, above)
    assert section.catch_up is not None
    assert section.catch_up.seeded >= QUICK.read_events
    assert section.catch_up.complete  # read_all gave back every seeded event
    render(section)


def test_quick_bench_on_sqlite() -> None:
    _assert_figures(run_sqlite(QUICK), with_library=False)


@pytest.mark.postgres  # require_postgres(), not a fixture
def test_quick_bench_on_postgres() -> None:
    url = require_postgres()
    # eventsourcing comes with the bench extra (make bench), not with make test's dev extra.
    installed = importlib.util.find_spec("eventsourcing") is not None
    _assert_figures(run_postgres(url, QUICK), with_library=installed)


@pytest.mark.postgres  # require_postgres(), not a fixture
def test_quick_pipeline_bench() -> None:
    plan = pipeline_bench.QUICK_PLAN
    figures = pipeline_bench.measure_pipeline(require_postgres(), plan)
    assert figures.latency is not None
    assert len(figures.latency.samples_ms) == plan.latency_runs
    for burst in figures.bursts:  # every execution: one Processing, one Completed
        assert (burst.complete, burst.duplicated, burst.missing) == (plan.burst, 0, 0)
    # Celery and the upload are skipped only with a reason (no Redis, no disk space).
    assert figures.celery_burst is not None or figures.celery_skipped
    if figures.celery_burst is not None:
        assert figures.celery_burst.ready == plan.burst
    assert figures.memory is not None or figures.memory_skipped
    pipeline_report.render(figures, plan)


@pytest.mark.postgres  # require_postgres(), not a fixture
def test_tiny_eventgrid_bench() -> None:
    plan = eventgrid_bench.EventGridPlan(executions=100, latency_runs=2, warmup=1)
    figures = eventgrid_bench.measure_eventgrid(require_postgres(), plan, lambda step: None)
    assert figures.events == figures.relay_published == 400  # every event published, once
    assert figures.sdk_per_second > 0 and figures.relay_per_second > 0
    for latency in (figures.azure_latency, figures.local_latency):
        assert latency is not None and len(latency.samples_ms) == plan.latency_runs
    assert "outbox relay" in eventgrid_bench.render(figures, plan)


@pytest.mark.postgres  # require_postgres(), not a fixture
def test_tiny_webhook_bench() -> None:
    plan = webhook_bench.WebhookPlan(events=40, endpoints=3)
    figures = webhook_bench.measure_webhooks(require_postgres(), plan, lambda step: None)
    assert figures.expected == 120
    assert figures.delivered == figures.expected  # none lost (some after a retry, on a busy day)
    # none twice, but an attempt that failed after the receiver had it (its timeout) comes again
    assert figures.delivered <= figures.requests <= figures.delivered + figures.retried
    assert "deliveries/s" in webhook_bench.render(figures)


def test_quick_contained_bench() -> None:
    plan = contained_bench.QUICK_CONTAINED_PLAN
    figures = contained_bench.measure_contained(plan)
    for side in (figures.contained, figures.inline):
        assert side is not None and len(side.samples_ms) == plan.submits
    assert figures.sync_not_completed == 0
    assert [(b.runs, b.completed) for b in figures.bursts] == [(plan.burst, plan.burst)] * 2
    recovery = figures.recovery
    assert recovery is not None and not recovery.problem, recovery
    assert recovery.completed == recovery.processing_at_kill == plan.recovery_runs
    assert recovery.worker_lost == plan.recovery_runs  # each one failed over by the lease sweep
    table = contained_report.render(figures)
    for row in ("contained, warm pool", "inline (baseline)", "speed-up", "lease sweep"):
        assert row in table, table


@pytest.mark.postgres  # require_postgres(), not a fixture
def test_a_tiny_long_poll_run_gives_every_figure() -> None:
    from tests.bench.longpoll_bench import (
        LongPollPlan,
        measure_longpolls,
        render as render_longpolls,
    )

    plan = LongPollPlan(users=3, polls_per_user=2, others=2, seconds=5.0, wait=2.0)
    figures = measure_longpolls(require_postgres(), plan, lambda _: None)
    print(render_longpolls(figures))
    assert figures.most_waiting > 0 and figures.polls_answered > 0
    assert figures.other_reads > 0 and figures.idle_p95 > 0
    assert figures.pool_connections > 0 and figures.peak_connections > 0
