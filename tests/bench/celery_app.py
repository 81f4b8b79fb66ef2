"""The Celery + Redis baseline's app: one no-op task, broker and results in Redis.

The bench starts a worker on this module (``celery -A tests.bench.celery_app worker``) and sends
it ``noop`` tasks, to set our pipeline's figures beside a task queue's that keeps no durable
record. The queue comes from ``MT_BENCH_CELERY_QUEUE`` (one per run, so a run never takes another
run's leftovers) and Redis from ``MT_BENCH_REDIS`` (DB 5 by default, which nothing else uses).
"""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get("MT_BENCH_REDIS", "redis://127.0.0.1:6379/5")
QUEUE = os.environ.get("MT_BENCH_CELERY_QUEUE", "mt-bench")

app = Celery("mt_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    result_expires=3600,  # the bench deletes its results; this is the backstop
    worker_hijack_root_logger=False,
    worker_enable_remote_control=False,  # no pidbox queue: the run leaves no broadcast keys
)


@app.task(name="mt_bench.noop")
def noop() -> str:
    return "ok"
