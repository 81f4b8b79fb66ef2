"""The webhook delivery worker against real HTTP endpoints on 127.0.0.1, on both backends: what
an endpoint's owner would see (deliveries, signatures, retries, the log, disabling), and that a
slow endpoint or a restart never costs another delivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from events.database import Database
from events.envelope import RecordedEvent
from events.store import EventStore
from handlers import work
from handlers.bindings import read_bindings
from handlers.bootstrap import bootstrap
from handlers.function_app import create
from handlers.settings import Settings
from services.webhooks import (
    endpoints as webhook_endpoints,
    messages as webhook_messages,
    tables,
)
from services.webhooks.dispatcher import WebhookDispatcher
from services.webhooks.resolver import DnsResolver
from services.webhooks.signing import new_secret
from tests.events.factories import execution_events
from tests.services.webhooks.endpoint import Answer, Endpoint, Received
from tests.services.webhooks.fake_dns import fake_async_resolver

SCALE = 0.001  # the retry schedule in milliseconds: 0, 5 ms, 0.3 s, 1.8 s, …
OWNER = "7"  # execution_events()' owner


class Script:
    """An endpoint's answers: ``statuses`` first, then ``default``; arrival times recorded."""

    def __init__(
        self,
        *statuses: int,
        default: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        delay: float = 0.0,
    ) -> None:
        self.statuses = list(statuses)
        self.default = default
        self.headers = headers or {}
        self.body = body
        self.delay = delay
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self._lock = threading.Lock()

    def __call__(self, received: Received) -> Answer:
        with self._lock:
            self.arrivals.append(time.monotonic())
            status = self.statuses.pop(0) if self.statuses else self.default
        return Answer(status, self.headers, self.body, self.delay)


@pytest.fixture
def db(store_url: str, store: EventStore) -> Iterator[Database]:
    with Database(store_url) as d:
        tables.setup(d)
        yield d


@pytest.fixture
def receivers() -> Iterator[Callable[[Script], Endpoint]]:
    started: list[Endpoint] = []

    def start(script: Script) -> Endpoint:
        endpoint = Endpoint(script)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.close()


@pytest.fixture
def dispatchers(store: EventStore, store_url: str) -> Iterator[Callable[..., WebhookDispatcher]]:
    made: list[WebhookDispatcher] = []

    def make(**options: Any) -> WebhookDispatcher:
        options = {"allow_loopback_http": True, "retry_scale": SCALE, **options}
        dispatcher = WebhookDispatcher(store, store_url, **options)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close()


def register(db: Database, receiver: Endpoint, owner: str = OWNER, **filters: Any):
    return webhook_endpoints.create_endpoint(
        db, owner=owner, url=receiver.url("/hooks"), secret=new_secret(), **filters
    )


def run_execution(store: EventStore) -> list[RecordedEvent]:
    """One image-rotate run of owner 7: Submitted, Uploaded, Processing, Completed."""
    stream, events = execution_events()
    store.append(stream, events)
    return store.read_stream(stream)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def ids_received(receiver: Endpoint) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.requests]


def only_message(db: Database, endpoint: webhook_endpoints.Endpoint) -> webhook_messages.Message:
    (message,) = webhook_messages.messages(db, endpoint.id)
    return message


# -- deliveries --------------------------------------------------------------------------------


def test_each_event_reaches_its_owners_matching_endpoints_once_signed(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    everything, completed, other = (receivers(Script()) for _ in range(3))
    endpoint = register(db, everything)
    register(db, completed, event_types=["Completed"])
    register(db, other, tools=["pdf-merge"])  # another tool
    register(db, other, owner="8")  # another user
    events = run_execution(store)

    report = dispatchers().run_once()

    assert (report.messages, report.delivered, report.failed) == (5, 5, 0)
    # Up to four at a time per endpoint: in no particular order (Standard Webhooks promises none).
    assert sorted(ids_received(everything)) == sorted(str(e.id) for e in events)
    by_id = {str(e.id): e for e in events}
    for request in everything.requests:
        event = by_id[request.headers["webhook-id"]]
        assert orjson.loads(request.body) == event.to_cloudevent()
        assert request.headers["webhook-id"] == event.to_cloudevent()["id"]
        assert request.headers["content-type"] == "application/json"
        verified = Webhook(endpoint.secret).verify(request.body, request.headers)
        assert verified["type"] == event.type
    stored = {m.event_id: m.body.encode() for m in webhook_messages.messages(db, endpoint.id)}
    assert all(r.body == stored[r.headers["webhook-id"]] for r in everything.requests)
    assert [orjson.loads(r.body)["type"] for r in completed.requests] == [events[-1].type]
    assert other.requests == []

    again = dispatchers().run_once()
    assert (again.messages, again.attempts) == (0, 0)
    assert len(everything.requests) == 4


def test_failures_are_retried_on_the_schedule_and_logged(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script(500, 500, default=200, body=b"not now"))
    endpoint = register(db, receiver, event_types=["Submitted"])
    run_execution(store)
    dispatcher = dispatchers()
    dispatcher.fan_out_pending()  # the message is due from now on
    t0 = datetime.now(UTC)

    steps = [  # (now, requests received so far): 5 ms, then 0.3 s, between attempts 1-2-3
        (t0, 1),
        (t0 + timedelta(milliseconds=4), 1),
        (t0 + timedelta(milliseconds=6), 2),
        (t0 + timedelta(milliseconds=6 + 290), 2),
        (t0 + timedelta(milliseconds=6 + 310), 3),
    ]
    for now, received in steps:
        dispatcher.run_once(now=now)
        assert len(receiver.requests) == received, now - t0

    message = only_message(db, endpoint)
    assert (message.status, message.attempts, message.next_attempt_at) == ("delivered", 3, None)
    log = sorted(webhook_messages.attempts(db, endpoint.id), key=lambda a: a.attempt)
    assert [(a.attempt, a.status, a.ok) for a in log] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert [a.at for a in log] == [steps[0][0], steps[2][0], steps[4][0]]
    assert all(a.latency_ms > 0 and a.response == "not now" and a.error is None for a in log)
    assert webhook_endpoints.get_endpoint(db, endpoint.id).failing_since is None


def test_410_disables_the_endpoint_and_fails_what_it_was_owed(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script(default=410))
    endpoint = register(db, receiver)
    run_execution(store)

    report = dispatchers(per_endpoint=1).run_once()

    assert len(receiver.requests) == 1
    assert report.disabled == [endpoint.id]
    now = webhook_endpoints.get_endpoint(db, endpoint.id)
    assert not now.enabled and "answered 410 Gone at" in now.disabled_reason
    assert {m.status for m in webhook_messages.messages(db, endpoint.id)} == {"failed"}
    run_execution(store)
    assert dispatchers().run_once().attempts == 0
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_up_to_the_last_attempt(
    status: int, store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script(status, status, default=200, headers={"Retry-After": "1"}))
    endpoint = register(db, receiver, event_types=["Submitted"])
    run_execution(store)
    dispatcher = dispatchers()
    dispatcher.fan_out_pending()  # the message is due from now on
    t0 = datetime.now(UTC)

    dispatcher.run_once(now=t0)
    # The schedule says 5 ms (scaled); the endpoint asked for a second, as given.
    assert only_message(db, endpoint).next_attempt_at == t0 + timedelta(seconds=1)
    dispatcher.run_once(now=t0 + timedelta(milliseconds=990))
    assert len(receiver.requests) == 1

    # Its last attempt: no later one, whatever the endpoint asks.
    db.execute("UPDATE webhook_messages SET attempts = 7")
    dispatcher.run_once(now=t0 + timedelta(seconds=1))
    assert len(receiver.requests) == 2
    message = only_message(db, endpoint)
    assert (message.status, message.next_attempt_at) == ("failed", None)


def test_an_endpoint_failing_too_long_is_disabled_with_the_reason(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script(default=500))
    endpoint = register(db, receiver, event_types=["Submitted"])
    run_execution(store)
    dispatcher = dispatchers()
    dispatcher.fan_out_pending()  # the message is due from now on
    t0 = datetime.now(UTC)
    too_long = timedelta(days=5) * SCALE  # 432 s

    dispatcher.run_once(now=t0)
    dispatcher.run_once(now=t0 + too_long - timedelta(seconds=1))
    assert webhook_endpoints.get_endpoint(db, endpoint.id).enabled
    report = dispatcher.run_once(now=t0 + too_long + timedelta(seconds=1))

    assert len(receiver.requests) == 3
    assert report.disabled == [endpoint.id]
    disabled = webhook_endpoints.get_endpoint(db, endpoint.id)
    assert not disabled.enabled
    assert disabled.disabled_reason.startswith("failing since ")
    assert "5 days; last error: HTTP 500" in disabled.disabled_reason
    assert only_message(db, endpoint).status == "failed"


def test_a_paused_endpoint_gets_nothing_and_its_messages_fail(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script())
    endpoint = register(db, receiver)
    run_execution(store)
    dispatcher = dispatchers()
    dispatcher.fan_out_pending()
    webhook_endpoints.update_endpoint(db, endpoint.id, enabled=False)

    assert dispatcher.run_once().attempts == 0
    assert receiver.requests == []
    assert {m.status for m in webhook_messages.messages(db, endpoint.id)} == {"failed"}
    assert webhook_messages.attempts(db, endpoint.id) == []


def test_an_address_that_turns_private_is_refused_at_delivery(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script())
    dns = {"hooks.example.test": ["127.0.0.1"]}
    endpoint = webhook_endpoints.create_endpoint(
        db,
        owner=OWNER,
        url=f"http://hooks.example.test:{receiver.port}/in",
        secret=new_secret(),
        event_types=["Submitted"],
    )
    dispatcher = dispatchers(resolve=fake_async_resolver(dns))
    run_execution(store)
    assert dispatcher.run_once().delivered == 1
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"

    dns["hooks.example.test"] = ["10.1.2.3"]  # a rebinding, or the owner's DNS changed
    run_execution(store)
    dispatcher.fan_out_pending()
    report = dispatcher.run_once(now=datetime.now(UTC))  # one attempt: the retry is 5 ms later

    assert (report.delivered, report.retrying) == (0, 1)
    assert len(receiver.requests) == 1
    (last, *_) = webhook_messages.attempts(db, endpoint.id)
    assert last.status is None and not last.ok
    assert last.error.startswith("forbidden_address: hooks.example.test resolves to 10.1.2.3")


# -- DNS ---------------------------------------------------------------------------------------

SLOW_DNS = 4.0  # seconds the slow names' DNS takes to answer


def slow_names(dns_stubs, count: int) -> tuple[list[str], DnsResolver]:
    """``count`` names that resolve to 127.0.0.1 after SLOW_DNS, and a resolver asking them."""
    names = [f"slow{i}.hooks.example.test" for i in range(count)]
    stub = dns_stubs({n: ["127.0.0.1"] for n in names}, delays=dict.fromkeys(names, SLOW_DNS))
    return names, DnsResolver(["127.0.0.1"], port=stub.port)


def test_names_with_slow_dns_never_delay_an_address(
    store: EventStore, db: Database, receivers, dispatchers, dns_stubs
) -> None:
    # The issue: 12 endpoints whose DNS took 4 s delayed an IP address's deliveries 28-32 s.
    names, resolver = slow_names(dns_stubs, 12)
    slow = receivers(Script())
    for name in names:
        webhook_endpoints.create_endpoint(
            db, owner=OWNER, url=f"http://{name}:{slow.port}/in", secret=new_secret()
        )
    literal = receivers(Script())
    register(db, literal)  # http://127.0.0.1:port/hooks
    thread, stop = dispatchers(resolve=resolver, stop_grace=0.1).start()
    try:
        started = time.monotonic()
        sent = run_execution(store)
        wait_until(lambda: len(literal.requests) == len(sent), timeout=2 * SLOW_DNS)
        literal_done = time.monotonic() - started
        # The slow names' deliveries wait for their own DNS, then go out.
        wait_until(lambda: len(slow.requests) == len(names) * len(sent), timeout=4 * SLOW_DNS)
        slow_done = time.monotonic() - started
    finally:
        stop.set()
        thread.join(10)
    print(f"IP address delivered in {literal_done:.2f} s, slow names in {slow_done:.2f} s")
    assert literal_done < 1.0, f"the IP address waited {literal_done:.1f} s"
    assert slow_done >= SLOW_DNS
    hosts = {r.headers["host"].split(":")[0] for r in slow.requests}
    assert hosts == set(names)


def test_dns_slower_than_the_timeout_fails_that_delivery_and_it_is_retried(
    store: EventStore, db: Database, receivers, dispatchers, dns_stubs
) -> None:
    (name,), resolver = slow_names(dns_stubs, 1)
    receiver = receivers(Script())
    endpoint = webhook_endpoints.create_endpoint(
        db,
        owner=OWNER,
        url=f"http://{name}:{receiver.port}/in",
        secret=new_secret(),
        event_types=["Submitted"],
    )
    dispatcher = dispatchers(resolve=resolver, timeout=1.0)
    run_execution(store)
    dispatcher.fan_out_pending()  # the message is due from now on

    started = time.monotonic()
    report = dispatcher.run_once(now=datetime.now(UTC))  # one attempt: the retry is 5 ms later
    took = time.monotonic() - started

    assert (report.delivered, report.retrying, report.failed) == (0, 1, 0)
    assert took < 1.0 + SLOW_DNS / 2, took  # the delivery's timeout, not the DNS's 4 s
    assert receiver.requests == []
    (attempt,) = webhook_messages.attempts(db, endpoint.id)
    assert attempt.error == f"unresolvable_host: {name} did not resolve within 1 s"
    assert attempt.status is None and 900 < attempt.latency_ms < 1000 * SLOW_DNS
    assert only_message(db, endpoint).status == "pending"


# -- the worker --------------------------------------------------------------------------------


def test_a_slow_endpoint_never_delays_another(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    slow_script, fast_script = Script(delay=2.0), Script()
    slow = receivers(slow_script)
    register(db, slow)
    fast = receivers(fast_script)
    register(db, fast)
    thread, stop = dispatchers(per_endpoint=2, stop_grace=0.1).start()
    try:
        run_execution(store)
        wait_until(lambda: len(fast.requests) == 4)
        run_execution(store)  # while the slow endpoint holds its first two
        wait_until(lambda: len(fast.requests) == 8)
        assert len(slow.requests) == 2  # its lane's two, still waiting for answers
    finally:
        stop.set()
        thread.join(10)
    first_slow_answer = slow_script.arrivals[0] + 2.0
    assert fast_script.arrivals[-1] < first_slow_answer - 1.0


def test_a_restarted_worker_delivers_everything(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    script = Script(delay=0.2)
    receiver = receivers(script)
    register(db, receiver)
    sent = [str(e.id) for _ in range(3) for e in run_execution(store)]
    # Stopped without grace mid-send, as if the process died: its claim's lease runs on.
    thread, stop = dispatchers(per_endpoint=1, stop_grace=0.0).start()
    wait_until(lambda: len(receiver.requests) >= 2)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert len(receiver.requests) < len(sent)

    after_the_lease = datetime.now(UTC) + timedelta(minutes=3)
    dispatchers().run_once(now=after_the_lease)

    received = ids_received(receiver)
    assert set(received) == set(sent)
    assert len(received) - len(sent) <= 1  # at most the one in flight, again


def test_two_workers_at_once_send_each_event_once(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    # The web process's worker and the timer Function, on one database.
    receiver = receivers(Script(delay=0.02))
    register(db, receiver)
    sent = [str(e.id) for _ in range(4) for e in run_execution(store)]
    workers = [dispatchers(per_endpoint=2) for _ in range(2)]
    threads = [threading.Thread(target=w.run_once) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(ids_received(receiver)) == sorted(sent)


def test_wake_sends_what_became_due_at_once(
    store: EventStore, db: Database, receivers, dispatchers
) -> None:
    receiver = receivers(Script())
    endpoint = register(db, receiver, event_types=["Submitted"])
    dispatcher = dispatchers()
    thread, stop = dispatcher.start()
    try:
        run_execution(store)
        wait_until(lambda: len(receiver.requests) == 1)
        time.sleep(0.1)  # asleep now, for up to a second: no event will come to wake it
        webhook_messages.redeliver(db, only_message(db, endpoint).id)  # the owner's "send again"
        woken = time.monotonic()
        dispatcher.wake()
        wait_until(lambda: len(receiver.requests) == 2)
        assert time.monotonic() - woken < 0.5
    finally:
        stop.set()
        thread.join(10)


def test_the_timer_function_delivers(
    store: EventStore, store_url: str, db: Database, receivers, tmp_path: Path
) -> None:
    receiver = receivers(Script())
    register(db, receiver)
    events = run_execution(store)
    env = {
        "DATABASE_URL": store_url,
        "BLOB_STORAGE": str(tmp_path / "blobs"),
        "WEBHOOKS_ALLOW_LOOPBACK_HTTP": "true",
        "WEBHOOK_RETRY_SCALE": "0.001",
    }
    parts = bootstrap(Settings.from_env(env))  # as the Functions app reads its app settings
    config = parts.settings
    assert (config.WEBHOOKS_ALLOW_LOOPBACK_HTTP, config.WEBHOOK_RETRY_SCALE) == (True, 0.001)
    try:
        _, timers = read_bindings(create(lambda: parts), config.schedules)
        (timer,) = [t for t in timers if t.name == "webhooks"]
        assert timer.schedule == "*/10 * * * * *"
        timer.function(**{timer.arg_name: None})
        assert sorted(ids_received(receiver)) == sorted(str(e.id) for e in events)
        assert work.deliver_webhooks(parts).attempts == 0  # nothing left
    finally:
        parts.dispatcher().close()
        parts.store.close()
