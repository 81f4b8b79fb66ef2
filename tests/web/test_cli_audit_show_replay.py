"""``audit show``: an execution's timeline with its chain checked; ``replay``: run it again."""

from __future__ import annotations

import io
import json
from pathlib import Path
from uuid import UUID

from PIL import Image

from events.store import EventStore
from services.blobs.local import LocalBlobStore
from services.executions.actions import ExecutionActions, Upload
from services.executions.decider import Status
from services.executions.service import ExecutionService
from services.tools.registry import discover
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


def test_replay_of_a_sync_tool_runs_a_linked_execution_with_the_same_params(
    store: EventStore, store_url: str
) -> None:
    original = submit(store, tool="json-format", params={"text": '{"b": 1, "a": [2]}'})

    replayed = run_cli("replay", str(original), "--store", store_url)

    assert replayed.returncode == 0, replayed.stderr
    assert "ran json-format: completed" in replayed.stdout
    new_id = UUID(replayed.stdout.splitlines()[-1])
    state = ExecutionService(store).load(new_id).state
    assert state.status is Status.COMPLETED
    assert (state.tool, state.owner, state.replay_of) == ("json-format", "1", original)
    assert state.result is not None and json.loads(state.result) == {"b": 1, "a": [2]}
    submitted = store.read_stream(f"execution-{new_id}")[0]
    assert submitted.metadata["correlationid"] == str(original)
    assert submitted.metadata["causationid"] == f"replay:{original}"


def test_replay_copies_the_input_and_refuses_once_it_expired(
    store: EventStore, store_url: str, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", signing_key=b"k")
    blobs.setup()
    image = io.BytesIO()
    Image.new("RGB", (8, 4), "red").save(image, "PNG")
    service = ExecutionService(store)
    actions = ExecutionActions(service, discover(), blobs, lambda: None)  # type: ignore[arg-type,return-value]
    upload = Upload("photo.png", [image.getvalue()])
    original = actions.submit("7", "image-rotate", {"angle": 90}, upload).execution.id
    env = {"BLOB_STORAGE": str(tmp_path / "blobs")}

    replayed = run_cli("replay", str(original), "--store", store_url, **env)

    assert replayed.returncode == 0, replayed.stderr
    new_id = UUID(replayed.stdout.splitlines()[-1])
    first, again = service.load(original).state, service.load(new_id).state
    assert again.status is Status.UPLOADED  # an async tool: the Functions host takes it
    assert again.upload is not None and first.upload is not None
    assert again.upload.name == f"{new_id}/photo.png" != first.upload.name
    assert again.upload.sha256 == first.upload.sha256
    assert b"".join(blobs.get("uploads", again.upload.name)) == image.getvalue()

    blobs.delete("uploads", first.upload.name)  # retention took the original's input
    expired = run_cli("replay", str(original), "--store", store_url, **env)
    assert expired.returncode == 1 and "is gone" in expired.stderr


def test_replay_of_an_unknown_execution_exits_1(store: EventStore, store_url: str) -> None:
    replayed = run_cli("replay", "0b9e4bd1-5f4e-4d4b-9a49-2b8c6c0a0a0a", "--store", store_url)
    assert replayed.returncode == 1 and "no execution" in replayed.stderr
