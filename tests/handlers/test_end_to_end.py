"""The async path end to end: submit → Functions host → tool → Completed, with Event Grid's
delivery semantics (duplicates, retries, dead letters) and the sweeper replacing dead workers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from PIL import Image

from events.catalog import DeclaredInput
from events.database import Database
from events.envelope import execution_stream
from handlers import work
from projections import status as status_model
from services.executions.commands import RecordUpload, Start, Submit
from services.executions.decider import TERMINAL, Status
from services.problems import Problem
from services.workers import leases
from tests.handlers.conftest import Toolbox

pytestmark = pytest.mark.timeout(120)


def png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    image.putpixel((0, 0), (255, 0, 0))  # a red top-left corner to check the direction
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_async_image_rotation_records_the_whole_lifecycle(sqlite_toolbox: Toolbox) -> None:
    box = sqlite_toolbox
    execution_id = box.submit("image-rotate", {"angle": 90}, ("photo.png", png(40, 20)))

    state = box.wait_for(execution_id, TERMINAL)

    assert state.status is Status.COMPLETED, state.error
    names = box.event_names(execution_id)
    assert names[:3] == ["Submitted", "Uploaded", "Processing"]
    assert names[-1] == "Completed"
    assert names[3:-1] and set(names[3:-1]) == {"Progress"}
    rotated = Image.open(io.BytesIO(box.output_bytes(state)))
    assert rotated.size == (20, 40)
    assert state.output is not None and state.output.container == "processed"


def test_video_rotation_reports_ffmpeg_progress(sqlite_toolbox: Toolbox, tmp_path: Path) -> None:
    import imageio_ffmpeg

    source = tmp_path / "clip.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x32:rate=25",
            "-t",
            "2",
            "-pix_fmt",
            "yuv420p",
            str(source),
        ],
        check=True,
    )
    box = sqlite_toolbox
    execution_id = box.submit("video-rotate", {"angle": 90}, ("clip.mp4", source.read_bytes()))

    state = box.wait_for(execution_id, TERMINAL, timeout=60)

    assert state.status is Status.COMPLETED, state.error
    progress = [
        e.data["percent"] for e in box.service.history(execution_id) if e.type.endswith("Progress")
    ]
    assert progress, "ffmpeg's progress was not reported"
    assert progress == sorted(progress)
    out = tmp_path / "rotated.mp4"
    out.write_bytes(box.output_bytes(state))
    frames = imageio_ffmpeg.read_frames(str(out))
    meta = next(frames)
    frames.close()
    assert tuple(meta["size"]) == (32, 64)


def test_the_same_uploaded_delivered_three_times_runs_once(sqlite_toolbox: Toolbox) -> None:
    box = sqlite_toolbox
    box.restart_host(timers=False, start=False)
    execution_id = box.submit("image-rotate", {"angle": 90}, ("photo.png", png(40, 20)))
    uploaded = box.service.history(execution_id)[-1]
    assert uploaded.type.endswith(".Uploaded")
    box.host.start()  # the feed delivers Submitted and Uploaded once each
    for _ in range(3):  # and Event Grid, at least once, delivers Uploaded three more times
        assert box.host.dispatch(uploaded) == 1

    box.wait_for(execution_id, TERMINAL)
    assert box.host.wait_until_idle()

    names = box.event_names(execution_id)
    assert names.count("Processing") == 1
    assert names.count("Completed") == 1
    assert box.host.stats.delivered == 5  # every delivery was handled, four found nothing to do


def test_a_tool_worker_killed_mid_run_is_lost_retried_at_once_and_completes(
    sqlite_toolbox: Toolbox, tmp_path: Path
) -> None:
    box = sqlite_toolbox
    marker = tmp_path / "first-attempt"
    execution_id = box.submit("test-sleep", {"hang_once_marker": str(marker)})
    box.wait_for(execution_id, {Status.PROCESSING}, timeout=30)
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, "the first attempt never started its tool"
        time.sleep(0.02)
    killed_at = time.monotonic()
    os.kill(int(marker.read_text()), signal.SIGKILL)  # the tool's worker process, not the host

    state = box.wait_for(execution_id, {Status.COMPLETED}, timeout=30)

    assert time.monotonic() - killed_at < 5, "a lost worker's run waited for a backoff"
    history = box.service.history(execution_id)
    failed = [e.data for e in history if e.type.endswith(".Failed")]
    assert [(f["code"], f["retryable"]) for f in failed] == [("worker_lost", True)]
    workers = [e.data["worker_id"] for e in history if e.type.endswith(".Processing")]
    assert workers[0].endswith(f"/{marker.read_text()}") and workers[1] != workers[0]
    assert box.event_names(execution_id)[-4:] == ["Failed", "Retried", "Processing", "Completed"]
    assert box.event_names(execution_id).count("Completed") == 1
    assert state.attempt == 2


def _started_by(box: Toolbox, process_id: str, lease_renewed_ago: float) -> UUID:
    """A test-noop execution recorded as running on a worker of ``process_id``, whose lease
    was last renewed ``lease_renewed_ago`` seconds ago (the host stays stopped)."""
    box.restart_host(start=False)
    execution_id = box.submit("test-noop", {})
    now = datetime.now(UTC)
    box.service.handle(
        execution_id,
        Start(f"{process_id}/4243", now, timedelta(minutes=5), lease_seconds=15.0),
    )
    with Database(box.parts.read_models_url) as db:
        leases.setup(db)
        leases.renew(db, process_id, 15.0, now=now - timedelta(seconds=lease_renewed_ago))
    return execution_id


def test_a_run_whose_process_died_is_lost_when_its_lease_runs_out_and_retried(
    sqlite_toolbox: Toolbox, tmp_path: Path
) -> None:
    """The process that ran the attempt is gone (its lease row expired): the sweeper fails the
    attempt with worker_lost and re-queues it in the same commit; the host runs attempt 2."""
    box = sqlite_toolbox
    execution_id = _started_by(box, "gone-host:4242:dead", lease_renewed_ago=20)
    box.host.start()

    state = box.wait_for(execution_id, {Status.COMPLETED}, timeout=30)

    failed = [e.data for e in box.service.history(execution_id) if e.type.endswith(".Failed")]
    assert [(f["code"], f["retryable"]) for f in failed] == [("worker_lost", True)]
    assert failed[0]["next_attempt_at"] is not None
    assert box.event_names(execution_id)[-4:] == ["Failed", "Retried", "Processing", "Completed"]
    assert state.attempt == 2


def test_a_run_whose_process_keeps_its_lease_is_left_alone(
    sqlite_toolbox: Toolbox,
) -> None:
    box = sqlite_toolbox
    execution_id = _started_by(box, "busy-host:4242:live", lease_renewed_ago=0)
    deadline = time.monotonic() + 10
    with Database(box.parts.read_models_url) as db:
        while (
            row := status_model.get(db, str(execution_id))
        ) is None or row.status != "processing":
            assert time.monotonic() < deadline, "the projector never saw the attempt"
            time.sleep(0.02)

    timeouts, _ = work.sweep(box.parts)

    assert timeouts.lost == []
    assert box.service.load(execution_id).state.status is Status.PROCESSING


def test_transient_failures_are_retried_with_backoff_then_succeed(
    sqlite_toolbox: Toolbox, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    execution_id = sqlite_toolbox.submit("test-flaky", {"fail_times": 2, "counter": str(counter)})

    state = sqlite_toolbox.wait_for(execution_id, {Status.COMPLETED}, timeout=30)

    assert state.attempt == 3
    names = sqlite_toolbox.event_names(execution_id)
    assert names.count("Failed") == 2 and names.count("Retried") == 2
    assert counter.read_text() == "3"


def test_transient_failures_stop_at_the_attempt_limit(
    sqlite_toolbox: Toolbox, tmp_path: Path
) -> None:
    counter = str(tmp_path / "runs")
    execution_id = sqlite_toolbox.submit("test-flaky", {"fail_times": 5, "counter": counter})
    box = sqlite_toolbox
    deadline = time.monotonic() + 30
    while box.event_names(execution_id).count("Failed") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)  # two more sweeps pass: no fourth attempt may come
    names = box.event_names(execution_id)
    assert names.count("Processing") == 3
    assert names[-1] == "Failed"
    state = box.service.load(execution_id).state
    assert state.error is not None and state.error.code == "transient_error"


@pytest.mark.parametrize(
    ("filename", "content", "code"),
    [
        ("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 50, "invalid_pdf"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10, "invalid_input"),
    ],
)
def test_input_the_tool_cannot_process_fails_with_a_final_code(
    sqlite_toolbox: Toolbox, filename: str, content: bytes, code: str
) -> None:
    tool = "pdf-rotate" if filename.endswith(".pdf") else "image-rotate"
    execution_id = sqlite_toolbox.submit(tool, {"angle": 90}, (filename, content))

    state = sqlite_toolbox.wait_for(execution_id, TERMINAL)

    assert state.status is Status.FAILED
    assert state.error is not None
    assert (state.error.code, state.error.retryable) == (code, False)
    assert sqlite_toolbox.host.wait_until_idle()
    assert sqlite_toolbox.event_names(execution_id).count("Processing") == 1


def test_a_text_file_named_png_that_reaches_the_tool_fails_as_invalid_input(
    sqlite_toolbox: Toolbox,
) -> None:
    """The upload check refuses such a file (below); should one reach the tool anyway (stored
    before the check existed, or by a client of the blob store), the tool fails it for good."""
    box = sqlite_toolbox
    execution_id = uuid.uuid4()
    text = b"just some text, not an image\n" * 10
    blob = box.blobs.put("uploads", f"{execution_id}/notes.png", [text], content_type="image/png")
    box.service.handle(
        execution_id,
        Submit(
            execution_id,
            "image-rotate",
            "image",
            "1.0.0",
            "async",
            "tester",
            {"angle": 90},
            DeclaredInput(filename="notes.png", size=len(text), content_type="image/png"),
        ),
    )
    box.service.handle(execution_id, RecordUpload(blob=blob))

    state = box.wait_for(execution_id, TERMINAL)

    assert state.status is Status.FAILED and state.error is not None
    assert (state.error.code, state.error.retryable) == ("invalid_input", False)
    assert "image" in state.error.message


@pytest.mark.parametrize(
    ("filename", "content", "code"),
    [
        ("notes.png", b"just some text, not an image\n" * 10, "file_type_mismatch"),
        ("program.exe", b"MZ\x90\x00" + b"\x00" * 100, "unsupported_file_type"),
        ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (51 * 1024 * 1024), "file_too_large"),
    ],
)
def test_a_wrong_or_oversized_upload_is_refused_with_nothing_written(
    sqlite_toolbox: Toolbox, filename: str, content: bytes, code: str
) -> None:
    box = sqlite_toolbox
    head = box.store.head_position()
    execution_id = uuid.uuid4()
    with pytest.raises(Problem) as refused:
        box.submit("image-rotate", {"angle": 90}, (filename, content))
    assert refused.value.code == code
    assert box.store.head_position() == head
    assert box.store.read_stream(execution_stream(execution_id)) == []
    assert list(box.blobs.list("uploads")) == []


def test_fifty_concurrent_async_executions_all_complete_once(toolbox: Toolbox) -> None:
    ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def submit_some(n: int) -> None:
        for _ in range(n):
            execution_id = toolbox.submit("test-noop")
            with lock:
                ids.append(execution_id)

    threads = [threading.Thread(target=submit_some, args=(10,)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 50

    for execution_id in ids:
        toolbox.wait_for(execution_id, TERMINAL, timeout=60)
    assert toolbox.host.wait_until_idle()

    for execution_id in ids:
        assert toolbox.event_names(execution_id) == ["Submitted", "Processing", "Completed"]
    # The projector's own thread runs beside this pass: either may apply the last events, so
    # what the status model shows is waited for, not read once.
    wanted = {str(i) for i in ids}
    deadline = time.monotonic() + 30
    with Database(toolbox.parts.read_models_url) as db:
        while True:
            toolbox.projector.run_once()
            completed = {r.execution_id for r in status_model.in_status(db, ["completed"])}
            if completed >= wanted or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert completed >= wanted


def test_a_function_that_keeps_failing_is_dead_lettered_and_can_be_redriven(
    sqlite_toolbox: Toolbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import work
    from handlers.deadletters import redrive

    box = sqlite_toolbox
    real = work.on_execution_event
    broken = threading.Event()
    broken.set()

    def flaky_function(deps, event):  # the database is down, say: the function itself raises
        if broken.is_set():
            raise ConnectionError("the database is unreachable")
        return real(deps, event)

    monkeypatch.setattr(work, "on_execution_event", flaky_function)
    execution_id = box.submit("test-noop")
    assert box.host.wait_until_idle()

    letters = box.deadletters.list()
    assert len(letters) == 1
    letter = letters[0]
    assert letter.function == "data"
    assert letter.attempts == box.host.retry.max_attempts
    assert "database is unreachable" in letter.last_error
    assert box.event_names(execution_id) == ["Submitted"]

    broken.clear()
    assert redrive(box.host.app, box.deadletters, letter.id, topic="/magictoolbox/local") is None
    assert box.event_names(execution_id) == ["Submitted", "Processing", "Completed"]
    assert box.deadletters.list() == []
