"""``magictoolbox audit verify``: exit 0 on an intact store, exit 1 naming the altered event."""

from __future__ import annotations

from events.envelope import execution_stream
from events.opening import open_store
from events.store import EventStore
from tests.web.support import run_cli, submit


def test_verify_all_on_an_intact_store_exits_0(store: EventStore, store_url: str) -> None:
    submit(store)
    submit(store, finish=False)

    result = run_cli("audit", "verify", "--all", "--store", store_url)

    assert result.returncode == 0, result.stderr
    assert "checked 2 streams, 5 events" in result.stdout
    assert "intact" in result.stdout


def test_verify_one_stream(store: EventStore, store_url: str) -> None:
    execution_id = submit(store)
    submit(store)

    result = run_cli("audit", "verify", execution_stream(execution_id), "--store", store_url)

    assert result.returncode == 0, result.stderr
    assert "checked 1 streams, 3 events" in result.stdout


def test_verify_of_an_unknown_stream_exits_1(store: EventStore, store_url: str) -> None:
    result = run_cli("audit", "verify", "execution-nope", "--store", store_url)

    assert result.returncode == 1
    assert "no stream 'execution-nope'" in result.stderr


def test_verify_needs_a_stream_or_all(store_url: str) -> None:
    result = run_cli("audit", "verify", "--store", store_url)

    assert result.returncode != 0
    assert "--all" in result.stderr


def test_verify_names_the_altered_event_and_exits_1(
    store: EventStore, store_url: str, tamper
) -> None:
    intact = execution_stream(submit(store))
    altered = execution_stream(submit(store))
    victim = store.read_stream(altered)[1]  # the Processing event

    tamper(victim.position)

    result = run_cli("audit", "verify", "--all", "--store", store_url)
    assert result.returncode == 1
    assert "BROKEN" in result.stdout
    assert f"stream:   {altered}" in result.stdout
    assert "version:  1" in result.stdout
    assert f"position: {victim.position}" in result.stdout
    assert f"id:       {victim.id}" in result.stdout
    assert altered in result.stderr

    assert run_cli("audit", "verify", altered, "--store", store_url).returncode == 1
    assert run_cli("audit", "verify", intact, "--store", store_url).returncode == 0


def test_the_tampered_data_is_what_readers_now_see(store: EventStore, store_url: str, tamper):
    """Guards the test above: the UPDATE really changed the stored event, so verify had a reason."""
    stream = execution_stream(submit(store))
    victim = store.read_stream(stream)[1]

    tamper(victim.position)

    fresh = open_store(store_url)
    try:
        assert fresh.read_stream(stream)[1].data["worker_id"] == "mallory"
    finally:
        fresh.close()
