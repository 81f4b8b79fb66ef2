"""One user's oversized event does not stall the relay for everyone, through the real server.

``magictoolbox run`` with ``EVENTGRID_TOPIC_ENDPOINT`` at ``magictoolbox eventgrid-emulator`` runs
the outbox relay beside the web. User A submits ``hash-text`` with 340,000 times "é": 680 KB as
UTF-8, under the API's and the store's limits, but 2 MB as the azure-eventgrid SDK sends it
(``\\u00e9``), twice Event Grid's 1 MB; again, at a script's pace, for five seconds, while a
bystander reads. Before, every publish was a 413, retried forever, and no later event of anyone
reached the topic. Now each of A's events is a dead letter (``relay status`` shows them), the
bystander's reads stay quick, and user B's runs, behind all of A's in the feed, reach the
emulator's subscriber within seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.azure_mode import TOPIC_KEY, running_emulator
from tests.e2e.contained import Server, client, create_users, server_env
from tests.e2e.edge import Bystander, repeat
from tests.services.eventgrid.receiver import Receiver
from tests.web.support import cli_env, run_cli

pytestmark = [pytest.mark.timeout(300), pytest.mark.timed]

ATTACK_TEXT = "é" * 340_000  # 680,000 bytes as UTF-8; 2,040,000 as the SDK escapes it
ARRIVAL_LIMIT = 10.0  # seconds for B's run to reach the subscriber ("a few", on a busy machine)
# Between the attacker's submits: the default submit limit's pace (API_THROTTLE_SUBMIT, 120/min;
# the test server's is higher), so no flood: this test asks what the oversized event does to
# the relay and to the others.
PACE = 0.5


@pytest.fixture
def subscriber() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def topic_endpoint(tmp_path: Path, subscriber: Receiver) -> Iterator[str]:
    """``magictoolbox eventgrid-emulator``: one topic, one CloudEvents subscriber."""
    config = {
        "topic": {"name": "edge-relay", "key": TOPIC_KEY},
        "subscriptions": [
            {
                "name": "audit",
                "endpoint": subscriber.url,
                "eventDeliverySchema": "CloudEventSchemaV1_0",
                "maxEventsPerBatch": 50,
            }
        ],
    }
    with running_emulator(tmp_path, cli_env(), config, nice=10) as endpoint:
        yield endpoint


@pytest.fixture
def env(tmp_path: Path, database_url: str, topic_endpoint: str) -> dict[str, str]:
    return server_env(
        tmp_path,
        database_url,
        EVENTGRID_TOPIC_ENDPOINT=topic_endpoint,
        EVENTGRID_TOPIC_KEY=TOPIC_KEY,
        RELAY_IN_PROCESS="1",
        FUNCTIONS_IN_PROCESS="1",
    )


def events_of(subscriber: Receiver, execution_id: str) -> list[dict]:
    return [e for e in subscriber.events() if e.get("subject", "").endswith(execution_id)]


def wait_published(subscriber: Receiver, execution_id: str, timeout: float) -> float:
    """Seconds until the run's Submitted and Completed events reached the subscriber."""
    started = time.monotonic()
    while True:
        types = {e["type"].rsplit(".", 1)[-1] for e in events_of(subscriber, execution_id)}
        if {"Submitted", "Completed"} <= types:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"execution {execution_id}'s events did not reach the topic's subscriber in "
                f"{timeout} s (it got {sorted(types)})"
            )
        time.sleep(0.02)


def test_an_event_too_large_for_event_grid_is_a_dead_letter_and_others_still_go_out(
    server: Server, env: dict[str, str], subscriber: Receiver
) -> None:
    tokens = create_users(env, "attacker", "other", "bystander")
    bystander = Bystander(server.url, tokens["bystander"])
    bystander.measure_idle()
    body = json.dumps(
        {"tool": "hash-text", "params": {"text": ATTACK_TEXT}}, ensure_ascii=False
    ).encode()
    assert len(body) < 700_000  # well under the API's 1 MB body: the API takes it

    attacks: list[str] = []

    def attack() -> None:
        with client(server.url, tokens["attacker"]) as api:
            made = api.post(
                "/api/v1/executions/",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert made.status_code in (201, 202), made.text
            attacks.append(made.json()["id"])

    def another_users_run() -> tuple[str, float]:
        with client(server.url, tokens["other"]) as api:
            mine = api.post(
                "/api/v1/executions/", json={"tool": "hash-text", "params": {"text": "hello"}}
            )
            assert mine.status_code in (201, 202), mine.text
            execution_id = mine.json()["id"]
        return execution_id, wait_published(subscriber, execution_id, ARRIVAL_LIMIT)

    with bystander.watching():
        repeat(attack, seconds=5.0, pause=PACE)
    # Every oversized event is now in the feed ahead of the other user's: before, the relay
    # stopped at the first of them, and these never reached the topic.
    others = [another_users_run() for _ in range(3)]

    took = [seconds for _, seconds in others]
    print(
        f"{len(attacks)} oversized submits; the other user's {len(others)} runs reached the "
        f"subscriber in at most {max(took):.2f} s (median {sorted(took)[len(took) // 2]:.2f} s)"
    )
    # Every attacking submit's Submitted event (2 MB as sent) never reached the topic...
    for execution_id in attacks:
        types = {e["type"].rsplit(".", 1)[-1] for e in events_of(subscriber, execution_id)}
        assert "Submitted" not in types, execution_id
        assert "Completed" in types  # ...and only that one: the run's later events did
    # ...and each is a dead letter that ``relay status`` shows, the checkpoint past it.
    status = run_cli("relay", "status", **env)
    assert status.returncode == 0, status.stderr
    print(status.stdout)
    assert f"dead letters: {len(attacks)} (latest first)" in status.stdout
    assert f"executions/{attacks[-1]} " in status.stdout
    assert "bytes as sent, over Event Grid's 1048576" in status.stdout
    # Known, and why issue 16 is still open: at the submit limit's pace (120/min, the default)
    # each 680 KB submit costs the web ~35 ms of CPU (parse, validate, hash, store, the worker's
    # pipe, its followers); on this 2-core machine that is x1.7-2.6 at p95 for a 2 ms read.
    # What this test is about held above: each oversized event is a dead letter and the others
    # go out.
    bystander.check(known="the oversized submits are felt by another user")
