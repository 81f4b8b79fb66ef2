"""The API load test still runs end to end: a tiny run against a real ``make run`` server answers
every request correctly, every row has requests, and the table prints. No time is asserted."""

from __future__ import annotations

import pytest

from tests.bench import api_load, api_report

pytestmark = pytest.mark.timeout(120)

TINY = api_load.ApiPlan(
    clients=(5,), warmup=0.3, duration=0.5, seed=20, think=(0.05, 0.15), settle_limit=1.0
)


def test_a_tiny_api_load_run_answers_every_request() -> None:
    figures = api_load.measure_api(TINY)

    assert figures.seeded == TINY.seed
    assert len(figures.rows) == 2 * len(api_load.MODES)  # two scenarios, one client count
    for row in figures.rows:
        assert not row.errors, (row.scenario.label, row.mode, row.examples)
        assert row.requests > 0, (row.scenario.label, row.mode)
    assert figures.server_exit == 0  # stopped cleanly by SIGINT
    table = api_report.render(figures)
    for label in (api_load.STATUS.label, api_load.SUBMIT.label):
        assert table.count(label) == len(api_load.MODES), table
