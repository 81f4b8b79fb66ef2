"""The local Functions host on its own: bindings, filters, retries, dead letters, checkpoints,
the bounded pool and timers, with small function apps made for each test."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import azure.functions as func
import pytest

from events import checkpoints
from events.database import Database
from events.following import Backoff
from events.opening import open_store
from events.store import EventStore
from handlers.bindings import read_bindings
from handlers.deadletters import DeadLetterStore
from handlers.function_app import READY_FOR_WORK, app as real_app
from handlers.host import LocalFunctionsHost, RetryPolicy
from services.executions.commands import Submit
from services.executions.service import ExecutionService

QUICK = RetryPolicy(max_attempts=4, backoff=Backoff(first=0.05, factor=2.0, cap=1.0))
NO_TIMERS = {
    "SWEEP_SCHEDULE": "0 0 0 * * *",
    "RETENTION_SCHEDULE": "0 0 0 * * *",
    "RELAY_SCHEDULE": "0 0 0 * * *",
    "WEBHOOKS_SCHEDULE": "0 0 0 * * *",
}


def stored_checkpoint(letters: DeadLetterStore, name: str) -> int:
    with Database(letters.database_url) as db:
        return checkpoints.position(db, name)


@pytest.fixture
def store(tmp_path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    s.setup()
    yield s
    s.close()


@pytest.fixture
def letters(tmp_path) -> DeadLetterStore:
    d = DeadLetterStore(f"sqlite:///{tmp_path / 'read.sqlite3'}")
    d.setup()
    return d


def submit(store: EventStore, category: str, tool: str = "t") -> uuid.UUID:
    execution_id = uuid.uuid4()
    ExecutionService(store).handle(
        execution_id,
        Submit(execution_id, tool, category, "1", "async", "owner"),
    )
    return execution_id


class Recorder:
    """Collects what a function received, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, float]] = []  # (function, subject, monotonic time)

    def record(self, name: str, event: func.EventGridEvent) -> None:
        with self.lock:
            self.calls.append((name, event.subject, time.monotonic()))

    def subjects(self, name: str) -> list[str]:
        with self.lock:
            return [s for n, s, _ in self.calls if n == name]


def test_the_host_reads_the_real_apps_bindings() -> None:
    subscriptions, timers = read_bindings(real_app, NO_TIMERS)
    by_name = {s.name: s for s in subscriptions}
    assert set(by_name) == {"encoders", "data", "image", "pdf", "video"}
    assert by_name["image"].subject_begins_with == "/tools/image/"
    assert set(by_name["video"].included_event_types) == set(READY_FOR_WORK)
    assert {t.name: t.schedule for t in timers} == {
        "sweep": "0 0 0 * * *",
        "retention": "0 0 0 * * *",
        "relay": "0 0 0 * * *",
        "webhooks": "0 0 0 * * *",
    }
    with pytest.raises(KeyError, match="SWEEP_SCHEDULE"):
        read_bindings(real_app, {})


def test_events_reach_only_the_functions_whose_filters_match(
    store: EventStore, letters: DeadLetterStore
) -> None:
    app = func.FunctionApp()
    seen = Recorder()

    @app.function_name("images")
    @app.event_grid_trigger(arg_name="event", subject_begins_with="/tools/image/")
    def images(event: func.EventGridEvent) -> None:
        seen.record("images", event)

    @app.function_name("submitted_pdfs")
    @app.event_grid_trigger(
        arg_name="e",
        subject_begins_with="/tools/pdf/",
        included_event_types=["MagicToolbox.Execution.Submitted"],
    )
    def submitted_pdfs(e: func.EventGridEvent) -> None:
        seen.record("submitted_pdfs", e)

    image_id = submit(store, "image")
    pdf_id = submit(store, "pdf")
    submit(store, "video")
    with LocalFunctionsHost(app, store, letters, retry=QUICK) as host:
        assert host.wait_until_idle()

    assert seen.subjects("images") == [f"/tools/image/t/executions/{image_id}"]
    assert seen.subjects("submitted_pdfs") == [f"/tools/pdf/t/executions/{pdf_id}"]


def test_a_failing_delivery_is_retried_with_growing_backoff_then_dead_lettered(
    store: EventStore, letters: DeadLetterStore
) -> None:
    app = func.FunctionApp()
    attempts: list[float] = []

    @app.function_name("always_fails")
    @app.event_grid_trigger(arg_name="event")
    def always_fails(event: func.EventGridEvent) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError("downstream is down")

    execution_id = submit(store, "data")
    with LocalFunctionsHost(app, store, letters, retry=QUICK) as host:
        assert host.wait_until_idle(10)
        assert host.checkpoint == store.head_position()  # dead-lettered counts as finished

    assert len(attempts) == QUICK.max_attempts
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for attempt, gap in enumerate(gaps, start=1):
        assert gap >= QUICK.backoff.delay(attempt) * 0.9, (attempt, gaps)
    [letter] = letters.list()
    assert letter.function == "always_fails"
    assert letter.attempts == QUICK.max_attempts
    assert letter.subject.endswith(str(execution_id))
    assert "downstream is down" in letter.last_error


def test_a_restart_redelivers_what_had_not_finished_and_nothing_is_skipped(
    store: EventStore, letters: DeadLetterStore
) -> None:
    app = func.FunctionApp()
    seen = Recorder()
    healthy = threading.Event()

    @app.function_name("worker")
    @app.event_grid_trigger(arg_name="event")
    def worker(event: func.EventGridEvent) -> None:
        if "/tools/slow/" in event.subject and not healthy.is_set():
            raise RuntimeError("not yet")
        seen.record("worker", event)

    first = submit(store, "fast")
    stuck = submit(store, "slow")
    after = submit(store, "fast")
    # Keeps retrying while we stop.
    patient = RetryPolicy(max_attempts=100, backoff=Backoff(first=5.0, cap=600.0))
    host = LocalFunctionsHost(app, store, letters, retry=patient).start()
    deadline = time.monotonic() + 10
    while len(seen.subjects("worker")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    host.stop()  # stuck's delivery is waiting for a retry: it has not finished
    assert stored_checkpoint(letters, "functions") < store.read_all(0)[1].position + 1

    healthy.set()
    with LocalFunctionsHost(app, store, letters, retry=QUICK) as restarted:
        assert restarted.wait_until_idle()
    subjects = seen.subjects("worker")
    ids = [s.rsplit("/", 1)[1] for s in subjects]
    assert ids.count(str(stuck)) == 1
    assert ids.count(str(first)) == 1  # finished before the stop: not delivered again
    assert ids.count(str(after)) >= 1  # at least once


def test_the_worker_pool_bounds_concurrent_invocations(
    store: EventStore, letters: DeadLetterStore
) -> None:
    app = func.FunctionApp()
    running = 0
    peak = 0
    lock = threading.Lock()

    @app.function_name("slow")
    @app.event_grid_trigger(arg_name="event")
    def slow(event: func.EventGridEvent) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    for _ in range(12):
        submit(store, "data")
    with LocalFunctionsHost(app, store, letters, workers=3, max_in_flight=5) as host:
        assert host.wait_until_idle()
        assert host.stats.delivered == 12
    assert peak == 3


def test_timers_fire_on_their_schedule_and_never_overlap(
    store: EventStore, letters: DeadLetterStore
) -> None:
    app = func.FunctionApp()
    starts: list[float] = []
    overlapping = threading.Event()
    busy = threading.Lock()

    @app.function_name("every_second")
    @app.timer_trigger(arg_name="timer", schedule="%TICK%")
    def every_second(timer: func.TimerRequest) -> None:
        if not busy.acquire(blocking=False):
            overlapping.set()
            return
        try:
            starts.append(time.monotonic())
            time.sleep(1.5)  # longer than the period: the next tick must be skipped
        finally:
            busy.release()

    with LocalFunctionsHost(app, store, letters, settings={"TICK": "* * * * * *"}):
        time.sleep(4.2)
    assert 2 <= len(starts) <= 3
    assert not overlapping.is_set()
    assert all(b - a >= 1.4 for a, b in itertools.pairwise(starts))


def test_deliveries_waiting_to_retry_do_not_stall_the_other_events(
    store: EventStore, letters: DeadLetterStore
) -> None:
    app = func.FunctionApp()
    seen = Recorder()

    @app.function_name("worker")
    @app.event_grid_trigger(arg_name="event")
    def worker(event: func.EventGridEvent) -> None:
        if "/tools/broken/" in event.subject:
            raise RuntimeError("this category's backend is down")
        seen.record("worker", event)

    for _ in range(3):
        submit(store, "broken")
    healthy = [submit(store, "fine") for _ in range(5)]
    slow_retries = RetryPolicy(max_attempts=5, backoff=Backoff(first=60.0, cap=600.0))
    host = LocalFunctionsHost(app, store, letters, retry=slow_retries, max_in_flight=2).start()
    try:
        deadline = time.monotonic() + 10
        while len(seen.subjects("worker")) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        delivered = {s.rsplit("/", 1)[1] for s in seen.subjects("worker")}
        assert delivered == {str(h) for h in healthy}
        # The failing ones wait for their retry: the checkpoint stays before the first of them.
        assert host.checkpoint < store.read_all(0)[0].position + 1
    finally:
        host.stop()


def test_a_deployment_from_before_the_shared_checkpoints_keeps_its_hosts_position(
    store_url: str,
) -> None:
    """Upgrading must not make the host deliver the whole feed again from position 0."""
    with Database(store_url) as db:
        db.execute(  # as the host made it before
            db.ddl(
                "CREATE TABLE functions_checkpoints (name TEXT PRIMARY KEY, "
                "position {bigint} NOT NULL, updated_at {ts} NOT NULL)"
            )
        )
        db.execute(
            "INSERT INTO functions_checkpoints VALUES (?, ?, ?)",
            ("functions", 42, datetime.now(UTC)),
        )

    letters = DeadLetterStore(store_url)
    letters.setup()
    assert stored_checkpoint(letters, "functions") == 42

    with Database(store_url) as db:
        checkpoints.write(db, "functions", 50)
    letters.setup()  # every start: the old row never drags a newer position back
    assert stored_checkpoint(letters, "functions") == 50
