"""``magictoolbox audit verify --all`` sees removal (issue 16, point 7), on SQLite and PostgreSQL.

The issue's reproduction: after deleting a stream's last event, deleting a whole stream, and
rewriting a payload with the chain recomputed, ``verify --all`` still passed. Here the same
three changes are made with raw SQL by someone without the audit key, after ``audit anchor``
(what the web process does as the feed advances); the CLI, run as a user runs it, names each.
"""

from __future__ import annotations

import re
import subprocess

from events.envelope import execution_stream
from events.store import EventStore
from tests.events.tampering import delete_last_event, delete_stream, raw, rewrite_and_rechain
from tests.web.support import run_cli, submit

KEY = {"AUDIT_KEY": "the operator's audit key, from Key Vault"}
MALLORY = '{"attempt":1,"deadline":"2030-01-01T00:00:00Z","worker_id":"mallory"}'


def anchored(store: EventStore, store_url: str, runs: int = 3) -> list[str]:
    """``runs`` finished executions, anchored; their streams."""
    streams = [execution_stream(submit(store)) for _ in range(runs)]
    result = run_cli("audit", "anchor", "--store", store_url, **KEY)
    assert result.returncode == 0, result.stderr
    assert f"anchored {3 * runs} events" in result.stdout
    return streams


def verify(store_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("audit", "verify", *args, "--store", store_url, **{**KEY, **env})


def test_an_untouched_anchored_store_passes(store: EventStore, store_url: str) -> None:
    anchored(store, store_url)

    result = verify(store_url, "--all")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact: every hash chain matches" in result.stdout
    assert re.search(r"anchored: up to position \d+ \(9 events in 3 streams\)", result.stdout)
    assert "anchors: every anchor verifies and matches the store" in result.stdout


def test_deleting_a_streams_last_event_fails_verify_as_truncation(
    store: EventStore, store_url: str
) -> None:
    intact, victim, _ = anchored(store, store_url)
    last = store.read_stream(victim)[-1]

    delete_last_event(store_url, victim)

    result = verify(store_url, "--all")
    assert result.returncode == 1
    assert "intact: every hash chain matches" in result.stdout  # what fooled verify before
    assert (
        f"TRUNCATED: {victim}: anchored at version 2 (position {last.position}), "
        "but it now ends at version 1"
    ) in result.stdout
    assert "FEED CHANGED: " in result.stdout
    assert "the store no longer holds what was anchored" in result.stderr
    assert verify(store_url, victim).returncode == 1
    assert verify(store_url, intact).returncode == 0


def test_deleting_a_whole_stream_fails_verify_as_a_missing_stream(
    store: EventStore, store_url: str
) -> None:
    _, victim, _ = anchored(store, store_url)

    delete_stream(store_url, victim)

    result = verify(store_url, "--all")
    assert result.returncode == 1
    assert "checked 2 streams, 6 events" in result.stdout
    assert f"MISSING STREAM: {victim}: anchored at version 2" in result.stdout
    assert "now has 6 events in 2 streams" in result.stdout
    one = verify(store_url, victim)  # not "no stream": the anchor says it was there
    assert one.returncode == 1
    assert f"MISSING STREAM: {victim}" in one.stdout


def test_a_rewritten_payload_with_its_chain_recomputed_fails_verify(
    store: EventStore, store_url: str
) -> None:
    _, victim, _ = anchored(store, store_url)

    rewrite_and_rechain(store_url, victim, 1, MALLORY)

    result = verify(store_url, "--all")
    assert result.returncode == 1
    assert "intact: every hash chain matches" in result.stdout
    assert f"RECOMPUTED CHAIN: {victim}: anchored at version 2" in result.stdout
    assert "events were rewritten or replaced" in result.stdout
    shown = run_cli("audit", "show", victim.removeprefix("execution-"), "--store", store_url)
    assert "mallory" in shown.stdout  # the rewrite is real: readers see it


def test_anchors_made_with_another_key_fail_verify_and_say_so(
    store: EventStore, store_url: str
) -> None:
    anchored(store, store_url, runs=1)

    result = verify(store_url, "--all", AUDIT_KEY="someone else's key")

    assert result.returncode == 1
    assert "ANCHOR ALTERED: the feed anchor was signed with another key" in result.stdout


def test_removing_events_with_their_anchors_shows_only_against_a_position_kept_elsewhere(
    store: EventStore, store_url: str
) -> None:
    """The limit, stated by a test: delete every anchor and event, and nothing in the database
    is left to tell; an anchored position noted earlier outside it (a log line, a last verify)
    still does."""
    anchored(store, store_url, runs=2)
    noted = int(re.search(r"up to position (\d+)", verify(store_url, "--all").stdout)[1])

    with raw(store_url) as db:
        db.execute("DELETE FROM audit_stream_anchors")
        db.execute("DELETE FROM audit_feed_anchor")
        db.execute("DELETE FROM events")

    fooled = verify(store_url, "--all")
    assert fooled.returncode == 0
    assert "anchors: none yet: nothing proves that no event was removed" in fooled.stdout
    caught = verify(store_url, "--all", "--anchored-at-least", str(noted))
    assert caught.returncode == 1
    assert f"ROLLED BACK: the anchors cover up to position 0, but position {noted}" in (
        caught.stdout
    )


def test_events_not_yet_anchored_are_reported_not_failed(store: EventStore, store_url: str) -> None:
    submit(store)

    result = verify(store_url, "--all")

    assert result.returncode == 0, result.stderr
    assert "not yet anchored: 3 events after position 0" in result.stdout
