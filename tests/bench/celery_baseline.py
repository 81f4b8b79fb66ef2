"""The Celery + Redis baseline: a real worker in a subprocess, timed as our pipeline is.

``CeleryWorker`` starts a worker (prefork, concurrency 2: the machine's cores) on
``tests.bench.celery_app`` with a queue of its own, and is ready once a first task comes back.
``latency_ms`` times ``noop.delay().get()`` one at a time; ``burst`` sends tasks with ``.delay()``
from several threads and times the first send to the last result in Redis. Leaving the ``with``
block stops the worker (terminate, then kill its process group) and deletes the run's keys,
whatever happened. ``unavailable`` says why the baseline cannot run (no Celery, no Redis), so the
bench prints the reason instead of failing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("MT_BENCH_REDIS", "redis://127.0.0.1:6379/5")
CONCURRENCY = 2
POOL = "prefork"
LABEL = f"{POOL} x{CONCURRENCY}"


@dataclass(frozen=True, slots=True)
class CeleryBurst:
    count: int
    seconds: float  # first send → last result ready
    send_seconds: float  # until the last .delay() returned
    ready: int  # results ready by the end

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def unavailable() -> str:
    """Why the baseline cannot run here, or "" when it can."""
    for module in ("celery", "redis"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[bench]')"
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} does not answer: {exc}"
    return ""


class CeleryWorker:
    """A worker subprocess on a queue of its own; entering raises RuntimeError if it is mute."""

    def __init__(self) -> None:
        self.queue = f"mt-bench-{secrets.token_hex(4)}"
        os.environ["MT_BENCH_CELERY_QUEUE"] = self.queue
        from tests.bench.celery_app import app, noop

        app.conf.task_default_queue = self.queue
        self.app, self.noop = app, noop
        self.task_ids: list[str] = []
        self._files = ExitStack()
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> CeleryWorker:
        self._log = self._files.enter_context(tempfile.TemporaryFile(mode="w+"))
        try:
            self._process = _start(self.queue, self._log)
            self._wait_ready(self._process)
        except BaseException as exc:
            self._log.seek(0)
            log = self._log.read()[-800:]
            self.__exit__()
            raise RuntimeError(f"the Celery worker did not answer ({exc}); its log: {log}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process is not None:
                _stop(self._process)
        finally:
            self._process = None
            _delete_keys(self.queue, self.task_ids)
            self._files.close()

    def _wait_ready(self, process: subprocess.Popen) -> None:
        result = self.noop.delay()
        self.task_ids.append(result.id)
        deadline = time.monotonic() + 30
        while not result.ready():
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("no answer within 30 s")
            time.sleep(0.05)
        result.get(timeout=1)

    def latency_ms(self, runs: int) -> list[float]:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            result = self.noop.delay()
            result.get(timeout=10)
            samples.append((time.perf_counter() - started) * 1000)
            self.task_ids.append(result.id)
        return samples

    def burst(self, count: int, threads: int) -> CeleryBurst:
        sent: list[list[str]] = [[] for _ in range(threads)]
        shares = [count // threads + (i < count % threads) for i in range(threads)]

        def sender(index: int, n: int) -> None:
            sent[index].extend(self.noop.delay().id for _ in range(n))

        senders = [threading.Thread(target=sender, args=(i, n)) for i, n in enumerate(shares)]
        started = time.perf_counter()
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        send_seconds = time.perf_counter() - started
        ids = [task_id for share in sent for task_id in share]
        self.task_ids.extend(ids)
        # The queue is FIFO, so each sender's last task is among the last done: wait for those
        # on the result channel, then check every result with the backend's MGET-based get_many
        # (polling all the keys from the start would take CPU from the worker on 2 cores).
        for share in sent:
            if share:
                self.app.AsyncResult(share[-1]).get(timeout=300)
        ready = sum(1 for _ in self.app.backend.get_many(ids, interval=0.02, timeout=300))
        return CeleryBurst(len(ids), time.perf_counter() - started, send_seconds, ready)


def _start(queue: str, log: Any) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.bench.celery_app",
        "worker",
        f"--concurrency={CONCURRENCY}",
        f"--pool={POOL}",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
    ]
    env = {**os.environ, "MT_BENCH_CELERY_QUEUE": queue, "MT_BENCH_REDIS": REDIS_URL}
    # A session of its own, so a stuck worker and its pool children go with one killpg.
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # warm shutdown: the pool children finish and exit with it
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            pass
    # Stuck, or gone while its pool children may not be: the whole process group, by its id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _delete_keys(queue: str, task_ids: list[str]) -> None:
    """The run's queue, its binding and its results; nothing else in the database."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [queue, f"_kombu.binding.{queue}"]
        keys += [key.decode() for key in client.scan_iter(match=f"*{queue}*", count=1000)]
        keys += [f"celery-task-meta-{task_id}" for task_id in task_ids]
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    except redis.RedisError as exc:
        print(f"  … celery: could not delete the run's Redis keys: {exc}", file=sys.stderr)
    finally:
        client.close()
