"""The benchmark still runs: the quick store part on both backends gives figures and reads back all.

No timing is asserted here; ``python -m tests.bench`` is where figures are read.
"""

from __future__ import annotations

from tests.bench.places import PostgresSchemas, SQLiteFiles
from tests.bench.store_bench import WRITER_COUNTS, StoreFigures, run_store_bench
from tests.bench.timing import QUICK
from tests.conftest import require_postgres


def _assert_figures(figures: StoreFigures) -> None:
    assert sorted(figures.writers) == sorted(WRITER_COUNTS)
    for rate in [*figures.writers.values(), figures.batch, figures.catch_up.rate]:
        assert rate.events > 0
        assert rate.per_second > 0
    assert figures.catch_up.seeded >= QUICK.read_events
    assert figures.catch_up.rate.events == figures.catch_up.seeded


def test_quick_store_bench_on_sqlite() -> None:
    with SQLiteFiles() as files:
        _assert_figures(run_store_bench(files.open_store, QUICK))


def test_quick_store_bench_on_postgres() -> None:
    url = require_postgres()
    with PostgresSchemas(url) as schemas:
        _assert_figures(run_store_bench(schemas.open_store, QUICK))
