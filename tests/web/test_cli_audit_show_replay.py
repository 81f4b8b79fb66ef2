"""``audit show``: an execution's timeline with its chain checked; ``replay``: run it again."""

from __future__ import annotations

from uuid import UUID

from events.store import EventStore
from services.executions.decider import Status
from services.executions.service import ExecutionService
from tests.web.support import run_cli, submit


def test_show_prints_the_timeline_and_the_state_as_of_a_version(
    store: EventStore, store_url: str
) -> None:
    execution_id = submit(store)

    shown = run_cli("audit", "show", str(execution_id), "--version", "1", "--store", store_url)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"execution-{execution_id}: 3 events"
    assert [line.split()[2] for line in lines[2:5]] == ["Submitted", "Processing", "Completed"]
    assert all(" ok " in line for line in lines[2:5])
    assert "tool=base64-encode" in lines[2]
    assert lines[-1].startswith("as of version 1: processing, attempt 1")


def test_show_marks_events_from_the_altered_one_on_and_exits_1(
    store: EventStore, store_url: str, tamper
) -> None:
    execution_id = submit(store)
    processing = store.read_stream(f"execution-{execution_id}")[1]
    tamper(processing.position)

    shown = run_cli("audit", "show", str(execution_id), "--store", store_url)

    assert shown.returncode == 1
    rows = shown.stdout.splitlines()[2:5]
    assert [" ok " in r for r in rows] == [True, False, False]
    assert "worker_id=mallory" in rows[1]  # what was altered is shown, and flagged
    assert "hash chain broken at version 1" in shown.stderr


def test_show_of_an_unknown_execution_exits_1(store: EventStore, store_url: str) -> None:
    shown = run_cli("audit", "show", "0b9e4bd1-5f4e-4d4b-9a49-2b8c6c0a0a0a", "--store", store_url)
    assert shown.returncode == 1 and "no execution" in shown.stderr
    garbage = run_cli("audit", "show", "not-an-id", "--store", store_url)
    assert garbage.returncode == 1 and "is not an execution id" in garbage.stderr


def test_replay_submits_a_linked_execution_with_the_same_tool_and_params(
    store: EventStore, store_url: str
) -> None:
    original = submit(store, tool="json-format")

    replayed = run_cli("replay", str(original), "--store", store_url)

    assert replayed.returncode == 0, replayed.stderr
    new_id = UUID(replayed.stdout.splitlines()[-1])
    state, version = ExecutionService(store).load(new_id)
    assert state.status is Status.SUBMITTED and version == 0
    assert (state.tool, state.owner, state.replay_of) == ("json-format", "1", original)
    (submitted,) = store.read_stream(f"execution-{new_id}")
    assert submitted.metadata["correlationid"] == str(original)
    assert submitted.metadata["causationid"] == f"replay:{original}"


def test_replay_of_an_unknown_execution_exits_1(store: EventStore, store_url: str) -> None:
    replayed = run_cli("replay", "0b9e4bd1-5f4e-4d4b-9a49-2b8c6c0a0a0a", "--store", store_url)
    assert replayed.returncode == 1 and "no execution" in replayed.stderr
