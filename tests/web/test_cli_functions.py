"""The Functions host as a user runs it: ``magictoolbox functions`` (run, list, deadletters,
redrive) and ``make run``'s single process, where the web server also does the work."""

from __future__ import annotations

import io
import signal
import subprocess
import time
from pathlib import Path
from uuid import UUID

import orjson
import pytest
from PIL import Image

from events.opening import open_store
from events.store import EventStore
from handlers.deadletters import DeadLetterStore
from services.blobs.local import LocalBlobStore
from services.executions.actions import ExecutionActions, Upload
from services.executions.decider import TERMINAL, ExecutionState, Status
from services.executions.service import ExecutionService
from services.tools.registry import discover
from tests.web.support import ROOT, cli_command, cli_env, free_port, run_cli, wait_healthy

pytestmark = pytest.mark.timeout(120)


class Deployment:
    """An embedded deployment in a temp dir: its URLs, and a way to submit into it."""

    def __init__(self, root: Path) -> None:
        self.db_url = f"sqlite:///{root / 'app.sqlite3'}"
        self.blob_root = root / "blobs"
        self.env = {
            "DATABASE_URL": self.db_url,
            "BLOB_STORAGE": str(self.blob_root),
            "SWEEP_SCHEDULE": "*/2 * * * * *",
        }
        migrated = run_cli("migrate", "--no-input", **self.env)
        assert migrated.returncode == 0, migrated.stderr
        self.store: EventStore = open_store(self.db_url)
        self.blobs = LocalBlobStore(self.blob_root, signing_key=b"k")
        self.blobs.setup()
        self.service = ExecutionService(self.store)

    def rotate(self, width: int = 6, height: int = 4) -> UUID:
        image = io.BytesIO()
        Image.new("RGB", (width, height), "blue").save(image, "PNG")
        actions = ExecutionActions(self.service, discover(), self.blobs, lambda: None)  # type: ignore[arg-type,return-value]
        upload = Upload("p.png", [image.getvalue()])
        return actions.submit("7", "image-rotate", {"angle": 90}, upload).execution.id

    def wait(self, execution_id: UUID, timeout: float = 60) -> ExecutionState:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.service.load(execution_id).state
            if state.status in TERMINAL:
                return state
            time.sleep(0.05)
        pytest.fail(f"{execution_id} did not finish in {timeout}s")

    def output_size(self, state: ExecutionState) -> tuple[int, int]:
        assert state.output is not None
        data = b"".join(self.blobs.get("processed", state.output.name))
        return Image.open(io.BytesIO(data)).size


@pytest.fixture
def deployment(tmp_path: Path):
    d = Deployment(tmp_path)
    yield d
    d.store.close()


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, cwd=ROOT, env=cli_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def test_functions_list_shows_the_apps_triggers() -> None:
    listed = run_cli("functions", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.startswith("image") and "/tools/image/*" in line for line in lines)
    assert any(line.startswith("sweep") and "timer" in line for line in lines)
    assert len([line for line in lines if "eventGrid" in line]) == 5


def test_the_functions_command_processes_executions_until_stopped(deployment: Deployment) -> None:
    host = start(cli_command("functions"), deployment.env)
    try:
        state = deployment.wait(deployment.rotate(6, 4))
    finally:
        out, err = stop(host)
    assert state.status is Status.COMPLETED, (state.error, err)
    assert deployment.output_size(state) == (4, 6)
    assert "functions host running" in out and "stopped" in out


def test_dead_letters_are_listed_and_redriven(deployment: Deployment) -> None:
    execution_id = deployment.rotate()
    uploaded = deployment.store.read_stream(f"execution-{execution_id}")[-1]
    letters = DeadLetterStore(deployment.db_url)
    letters.setup()
    letter_id = letters.add(
        function="image",
        event_id=str(uploaded.id),
        position=uploaded.position,
        event_type=uploaded.type,
        subject=uploaded.subject,
        event_json=orjson.dumps(uploaded.to_cloudevent()).decode(),
        attempts=30,
        last_error="ConnectionError: the database was down",
    )

    listed = run_cli("functions", "deadletters", **deployment.env)
    assert listed.returncode == 0, listed.stderr
    assert letter_id in listed.stdout and "the database was down" in listed.stdout

    redriven = run_cli("functions", "redrive", "--all", **deployment.env)
    assert redriven.returncode == 0, redriven.stderr
    assert f"redriven  {letter_id}" in redriven.stdout
    assert deployment.service.load(execution_id).state.status is Status.COMPLETED
    assert "0 dead letter(s)" in run_cli("functions", "deadletters", **deployment.env).stdout

    unknown = run_cli("functions", "redrive", "no-such-letter", **deployment.env)
    assert unknown.returncode != 0 and "no dead letter" in unknown.stderr


def test_the_web_process_also_runs_the_functions_host(deployment: Deployment) -> None:
    """What ``make run`` starts: uvicorn serving web.asgi, which runs the host in-process."""
    port = free_port()
    uvicorn = Path(cli_command()[0]).with_name("uvicorn")
    server = start(
        [str(uvicorn), "web.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        deployment.env,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout=30)
        state = deployment.wait(deployment.rotate(10, 2))
    finally:
        _, err = stop(server)
    assert state.status is Status.COMPLETED, (state.error, err)
    assert deployment.output_size(state) == (2, 10)
    assert "Application startup complete" in err
