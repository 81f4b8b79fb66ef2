"""Webhooks' bounds through the real server (``magictoolbox run``), on SQLite and PostgreSQL: a
user scripting endpoint after endpoint stops at ``WEBHOOKS_PER_USER`` with a 409 while another
user reads on undisturbed, and the delivery log is swept past ``WEBHOOK_MESSAGE_RETENTION_DAYS``
by the server's own ``webhooks`` timer. (A slow DNS name delaying nobody else is the delivery
worker's, tested in ``tests/services/webhooks/test_dispatcher.py`` against a DNS server of its own.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.contained import Server, client, create_users, server_env
from tests.e2e.edge import Bystander, paced
from tests.services.webhooks.endpoint import Endpoint

pytestmark = pytest.mark.timeout(300)

HOOKS = "/api/v1/webhooks/"
PUBLIC = "https://93.184.215.14/hooks"  # an IP address: no DNS, and nothing is ever sent there
PER_USER = 25  # the setting's default, which the cap test leaves as it is
ATTEMPTS = 150  # the endpoints the script created


# A count (the sweep, whose SQL differs, runs on both backends).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.timed
def test_a_user_scripting_endpoints_stops_at_the_cap_and_nobody_notices(
    tmp_path: Path, database_url: str
) -> None:
    env = server_env(tmp_path, database_url)
    with Server(env, tmp_path / "server.log") as server:
        tokens = create_users(env, "mallory", "alice", "bystander")
        bystander = Bystander(server.url, tokens["bystander"])
        bystander.measure_idle()

        with bystander.watching(), client(server.url, tokens["mallory"]) as api:
            # A script's pace, not a flood (a flood is the rate limits' business).
            answers = [
                paced(api.post(HOOKS, json={"url": f"{PUBLIC}/{n}"})) for n in range(ATTEMPTS)
            ]
        bystander.check()
        took = sorted(a.elapsed.total_seconds() for a in answers)
        print(f"{ATTEMPTS} creates: median {took[len(took) // 2] * 1000:.1f} ms")

        statuses = [a.status_code for a in answers]
        assert statuses.count(201) == PER_USER, sorted(set(statuses))
        refused = [a for a in answers if a.status_code != 201]
        assert {a.status_code for a in refused} == {409}
        problem = refused[0]
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.json()["code"] == "webhook_limit_reached"
        assert problem.json()["limit"] == PER_USER
        with client(server.url, tokens["mallory"]) as api:
            assert len(api.get(HOOKS).json()) == PER_USER
        with client(server.url, tokens["alice"]) as api:  # another user's count is their own
            assert api.post(HOOKS, json={"url": PUBLIC}).status_code == 201


# Kept this long after their last attempt: 0.0001 days is 8.6 s. The timer looks every 2 s.
RETENTION_DAYS = "0.0001"
RETENTION = 8.64


def test_the_server_sweeps_delivered_messages_past_retention(
    tmp_path: Path, database_url: str
) -> None:
    receiver = Endpoint()
    env = server_env(
        tmp_path,
        database_url,
        WEBHOOKS_ALLOW_LOOPBACK_HTTP="1",
        WEBHOOK_MESSAGE_RETENTION_DAYS=RETENTION_DAYS,
        WEBHOOKS_SCHEDULE="*/2 * * * * *",
    )
    try:
        with Server(env, tmp_path / "server.log") as server:
            tokens = create_users(env, "alice")
            with client(server.url, tokens["alice"]) as api:
                made = api.post(HOOKS, json={"url": receiver.url("/hooks")})
                assert made.status_code == 201, made.text
                log = made.json()["links"]["deliveries"] + "?limit=100"

                def run() -> set[str]:
                    """One run's messages, once all of them are delivered."""
                    before = {m["id"] for m in api.get(log).json()["results"]}
                    submitted = api.post(
                        "/api/v1/executions/",
                        json={"tool": "hash-text", "params": {"text": "hello"}},
                    )
                    assert submitted.status_code in (201, 202), submitted.text
                    deadline = time.monotonic() + 30
                    while True:
                        found = api.get(log).json()["results"]
                        new = [m for m in found if m["id"] not in before]
                        if new and all(m["status"] == "delivered" for m in new):
                            finished = {"Completed", "Failed"} & {
                                m["event_type"].rsplit(".", 1)[-1] for m in new
                            }
                            if finished:
                                return {m["id"] for m in new}
                        assert time.monotonic() < deadline, found
                        time.sleep(0.2)

                first = run()
                first_done = time.monotonic()
                time.sleep(RETENTION / 2)
                second = run()

                deadline = first_done + RETENTION + 15
                while first & {m["id"] for m in api.get(log).json()["results"]}:
                    assert time.monotonic() < deadline, "the first run's messages were kept"
                    time.sleep(0.2)
                left = {m["id"] for m in api.get(log).json()["results"]}
                swept_after = time.monotonic() - first_done
        print(f"first run's messages swept {swept_after:.1f} s after delivery")
        assert swept_after >= RETENTION - 1.0  # not before their time
        assert left == second  # the younger run's messages stay
        assert len(receiver.requests) == len(first) + len(second)  # all of them were delivered
    finally:
        receiver.close()
