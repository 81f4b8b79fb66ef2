"""A process's PostgreSQL connections are its pools' sizes, however many threads use them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from events import pools
from events.database import Database
from events.postgres_store import PostgresEventStore
from tests.conftest import PG_URL
from tests.events.factories import progress

THREADS = 24


@pytest.fixture
def small_pools() -> Iterator[None]:
    before = pools.pool_limits()
    pools.set_pool_limits(pools.PoolLimits(size=3))
    yield
    pools.set_pool_limits(before)


def connections_named(application: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchone()[0]


def test_two_dozen_threads_share_a_pool_of_three(pg_schema: str, small_pools: None) -> None:
    application = f"mt_pool_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}?schema={pg_schema}&application_name={application}"
    store = PostgresEventStore(url)
    store.setup()
    with Database(url) as setup:
        setup.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)")
    most = 0
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def work(n: int) -> None:
        db = Database(url)  # a thread's own, as Parts.read_models gives each thread
        try:
            start.wait()
            for i in range(20):
                store.append(f"execution-{n}", progress(1))
                with db.transaction():
                    db.execute(
                        "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        (n * 100 + i, i),
                    )
                    time.sleep(0.001)  # hold the transaction's connection a moment
                store.read_stream(f"execution-{n}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    while any(t.is_alive() for t in threads):
        most = max(most, connections_named(application))
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    store.close()

    assert not errors, errors[:3]
    # Three for the store's pool, three for the read models', the store's LISTEN and NOTIFY.
    assert 0 < most <= 3 + 3 + 2, most
    with Database(url) as db:
        assert db.execute("SELECT count(*) FROM t")[0][0] == THREADS * 20
