"""``magictoolbox events show|tail`` on both backends, run in a subprocess as a user runs them."""

from __future__ import annotations

import json
import subprocess
import threading

from events.catalog import Completed
from events.envelope import execution_stream, execution_subject, new_event
from events.store import EventStore
from tests.web.support import ROOT, SOURCE, cli_command, cli_env, run_cli, submit

SUBMITTED = "MagicToolbox.Execution.Submitted"
PROCESSING = "MagicToolbox.Execution.Processing"
COMPLETED = "MagicToolbox.Execution.Completed"


def test_show_prints_every_event_of_the_stream(store: EventStore, store_url: str) -> None:
    execution_id = submit(store)
    stream = execution_stream(execution_id)
    recorded = store.read_stream(stream)

    result = run_cli("events", "show", stream, "--store", store_url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{stream}: 3 events"
    assert len(lines) == 4
    for line, event, event_type in zip(
        lines[1:], recorded, [SUBMITTED, PROCESSING, COMPLETED], strict=True
    ):
        assert event_type in line
        assert str(event.id) in line
        assert line.split()[0] == str(event.version)
    assert "tool=base64-encode" in lines[1]


def test_show_json_prints_cloudevents(store: EventStore, store_url: str) -> None:
    execution_id = submit(store)
    stream = execution_stream(execution_id)

    result = run_cli("events", "show", stream, "--json", "--store", store_url)

    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["type"] for d in docs] == [SUBMITTED, PROCESSING, COMPLETED]
    assert [d["streamversion"] for d in docs] == [0, 1, 2]
    assert {d["specversion"] for d in docs} == {"1.0"}
    assert docs[0]["subject"] == execution_subject("encoders", "base64-encode", execution_id)
    assert docs[0]["source"] == SOURCE
    assert docs[0]["data"]["execution_id"] == str(execution_id)


def test_show_of_an_unknown_stream_exits_1(store: EventStore, store_url: str) -> None:
    submit(store)

    result = run_cli("events", "show", "execution-nope", "--store", store_url)

    assert result.returncode == 1
    assert "no stream 'execution-nope'" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_tail_from_zero_with_filters(store: EventStore, store_url: str) -> None:
    first = submit(store)
    submit(store, finish=False)

    result = run_cli(
        "events", "tail", "--from", "0", "--types", COMPLETED, "--limit-seconds", "0.5",
        "--store", store_url,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    position, stream, version, event_type, _time = lines[0].split()
    assert (stream, version, event_type) == (execution_stream(first), "v2", COMPLETED)
    assert int(position) == store.read_stream(execution_stream(first))[2].position


def test_tail_prints_events_appended_while_it_runs(store: EventStore, store_url: str) -> None:
    """tail is already following (it printed the first event) when another thread appends more."""
    execution_id = submit(store, finish=False)
    stream = execution_stream(execution_id)
    start = store.read_stream(stream)[0].position - 1
    proc = subprocess.Popen(
        cli_command(
            "events", "tail", "--from", str(start), "--json", "--limit-seconds", "8",
            "--store", store_url,
        ),
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert (first["type"], first["streamversion"]) == (SUBMITTED, 0)

        subject = execution_subject("encoders", "base64-encode", execution_id)
        completed = new_event(Completed(result="aGk=", duration_ms=1), subject=subject)
        writer = threading.Thread(target=store.append, args=(stream, [completed]))
        writer.start()
        writer.join()

        # Read through the same buffered pipe: communicate() would skip what readline buffered.
        out = proc.stdout.read()  # until tail stops by itself at --limit-seconds
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.stderr is not None
    assert proc.returncode == 0, proc.stderr.read()
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["type"], d["streamversion"]) for d in docs] == [(PROCESSING, 1), (COMPLETED, 2)]
    assert docs[-1]["id"] == str(completed.id)
