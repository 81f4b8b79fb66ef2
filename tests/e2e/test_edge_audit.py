"""Issue 16, point 7: the audit chain sees removal, on a real server (``magictoolbox run``) on
SQLite and PostgreSQL.

Runs go through the API; the server's own background anchorer signs the feed as it advances.
Then someone with write access to the database but not the audit key deletes a stream's last
event, deletes a whole stream and rewrites a payload with its chain recomputed, and
``magictoolbox audit verify --all`` (run meanwhile, while another user keeps reading) names all
three and fails, where before it passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from events.database import Database
from tests.e2e.contained import Server, client, create_users, server_env
from tests.e2e.edge import Bystander
from tests.events.tampering import delete_last_event, delete_stream, rewrite_and_rechain
from tests.web.support import run_cli

pytestmark = [pytest.mark.timeout(300), pytest.mark.timed]

MALLORY = '{"attempt":1,"deadline":"2030-01-01T00:00:00Z","worker_id":"mallory"}'


def wait_anchored(database_url: str, timeout: float = 30.0) -> int:
    """Until the server's anchorer has signed the feed up to its head; that position."""
    deadline = time.monotonic() + timeout
    with Database(database_url) as db:
        while True:
            head = db.execute("SELECT coalesce(max(position), 0) FROM events")[0][0]
            rows = db.execute("SELECT position FROM audit_feed_anchor")
            if rows and rows[0][0] == head:
                return head
            assert time.monotonic() < deadline, f"anchors at {rows}, feed at {head}"
            time.sleep(0.1)


def test_verify_names_a_cut_stream_a_missing_stream_and_a_recomputed_chain(
    tmp_path: Path, database_url: str
) -> None:
    env = server_env(tmp_path, database_url, AUDIT_KEY="the deployment's audit key")
    migrated = run_cli("migrate", **env)
    assert migrated.returncode == 0, migrated.stderr
    server = Server(env, tmp_path / "server.log")
    try:
        tokens = create_users(env, "owner", "bystander")
        streams = []
        with client(server.url, tokens["owner"]) as api:
            for text in ("cut", "gone", "rewritten", "untouched"):
                made = api.post(
                    "/api/v1/executions/", json={"tool": "hash-text", "params": {"text": text}}
                )
                assert made.status_code in (201, 202), made.text
                streams.append(f"execution-{made.json()['id']}")
        bystander = Bystander(server.url, tokens["bystander"])
        wait_anchored(database_url)
        before = run_cli("audit", "verify", "--all", **env)
        assert before.returncode == 0, before.stdout + before.stderr
        bystander.measure_idle()

        cut, gone, rewritten, _ = streams
        with bystander.watching():
            delete_last_event(database_url, cut)
            delete_stream(database_url, gone)
            rewrite_and_rechain(database_url, rewritten, 1, MALLORY)
            after = run_cli("audit", "verify", "--all", **env)
    finally:
        server.stop()

    print(after.stdout)
    assert after.returncode == 1
    assert "intact: every hash chain matches" in after.stdout  # all the chains alone could say
    assert f"TRUNCATED: {cut}: anchored at version" in after.stdout
    assert f"MISSING STREAM: {gone}: anchored at version" in after.stdout
    assert f"RECOMPUTED CHAIN: {rewritten}: anchored at version" in after.stdout
    assert "FEED CHANGED: " in after.stdout
    assert "the store no longer holds what was anchored" in after.stderr
    bystander.check()
