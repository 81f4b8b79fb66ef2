"""Contained tool runs through the real server (``magictoolbox run``: uvicorn, its Functions
host and its pool of tool worker processes), on SQLite and PostgreSQL: a catastrophic regex, a
memory hog and an output bomb end with their limit's code while other requests stay quick; a
server SIGKILLed twice mid-burst loses no run; a tool worker SIGKILLed mid-run costs one retry;
one user's burst does not hold another user's run back."""

from __future__ import annotations

import io
import os
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfWriter

from tests.e2e.contained import (
    Server,
    client,
    create_users,
    png,
    server_env,
    submit_file,
    wait_finished,
)
from tests.web.support import run_cli

pytestmark = pytest.mark.timeout(300)

# A pattern that backtracks exponentially: 30 a's and a '!' take hours with Python's re.
REDOS = {
    "text": '"' + "a" * 30 + '!"',
    "json_schema": {"type": "string", "pattern": "^(a+)+$"},
}
SYNC_LIMIT = 10.0  # json-validate's time limit (a sync tool's default)


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return server_env(tmp_path, database_url)


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def _timed_get(url: str, token: str, path: str, count: int, pause: float = 0.01) -> list[float]:
    took = []
    with client(url, token, timeout=30) as api:
        for _ in range(count):
            started = time.perf_counter()
            answer = api.get(path)
            took.append(time.perf_counter() - started)
            assert answer.status_code == 200
            time.sleep(pause)
    return took


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the runner's limits
@pytest.mark.timed
def test_catastrophic_regexes_end_at_their_time_limit_and_others_stay_quick(
    server: Server, env: dict[str, str]
) -> None:
    tokens = create_users(env, "attacker", "bystander")
    idle = _timed_get(server.url, tokens["bystander"], "/api/v1/tools/", 200)

    busy: list[float] = []
    stop = threading.Event()

    def bystander() -> None:
        with client(server.url, tokens["bystander"], timeout=30) as api:
            while not stop.is_set():
                started = time.perf_counter()
                assert api.get("/api/v1/tools/").status_code == 200
                busy.append(time.perf_counter() - started)
                time.sleep(0.01)

    def attack() -> tuple[float, dict]:
        with client(server.url, tokens["attacker"], timeout=60) as api:
            started = time.monotonic()
            answer = api.post(
                "/api/v1/executions/", json={"tool": "json-validate", "params": REDOS}
            )
            return time.monotonic() - started, answer.json()

    watcher = threading.Thread(target=bystander, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(4) as attackers:
        results = list(attackers.map(lambda _: attack(), range(4)))
    stop.set()
    watcher.join(30)

    for took, body in results:
        assert body["status"] == "failed", body
        assert body["error"]["code"] == "time_limit" and not body["error"]["retryable"]
        assert body["finished"] is True
        assert took <= SYNC_LIMIT + 2, f"a run took {took:.1f}s to end"
    idle_p95, busy_p95 = _p95(idle), _p95(busy)
    print(
        f"GET /api/v1/tools/ p95 idle {idle_p95 * 1000:.1f} ms, under attack "
        f"{busy_p95 * 1000:.1f} ms ({len(busy)} requests)"
    )
    assert len(busy) > 50
    assert busy_p95 <= 2 * idle_p95, (idle_p95, busy_p95)
    # The workers that were killed are replaced: a normal run works at once.
    with client(server.url, tokens["attacker"]) as api:
        fine = api.post(
            "/api/v1/executions/",
            json={
                "tool": "json-validate",
                "params": {"text": '"aaa"', "json_schema": REDOS["json_schema"]},
            },
        ).json()
    assert fine["status"] == "completed" and '"valid": true' in fine["result"]


def _bomb_pdf(pages: int = 150) -> bytes:
    """A PDF whose pages share one noisy 1.3 MB image: about 1.3 MB, but each split part
    carries the image again (190 MB of parts, past pdf-split's 128 MB)."""
    writer = PdfWriter()
    noise = Image.frombytes("L", (1500, 1500), os.urandom(1500 * 1500))
    for _ in range(pages):
        page = writer.add_blank_page(200, 200)
        del page
    image_pdf = io.BytesIO()
    noise.save(image_pdf, "PDF")
    from pypdf import PdfReader

    picture = PdfReader(io.BytesIO(image_pdf.getvalue())).pages[0]
    for page in writer.pages:
        page.merge_page(picture)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the runner's limits
def test_memory_and_output_bombs_end_with_their_code_and_the_server_stays_small(
    server: Server, env: dict[str, str]
) -> None:
    tokens = create_users(env, "mallory")
    rss_before = server.rss()
    with client(server.url, tokens["mallory"]) as api:
        hog = api.post(
            "/api/v1/executions/", json={"tool": "test-memory-hog", "params": {"megabytes": 800}}
        ).json()
        assert hog["status"] == "failed" and hog["error"]["code"] == "memory_limit", hog

        # 0.37 MB in, 13,294 x 13,294 pixels out: refused before the pixels are made.
        rotate = submit_file(api, "image-rotate", "wide.png", png(9400, 9400), angle=45)
        pdf = _bomb_pdf()
        split = submit_file(api, "pdf-split", "bomb.pdf", pdf)
        done = wait_finished(api, [rotate["id"], split["id"]], timeout=120)
    assert done[rotate["id"]]["error"]["code"] == "output_too_large", done[rotate["id"]]
    assert len(pdf) < 3 * 2**20
    assert (done[split["id"]]["error"] or {}).get("code") == "output_too_large", done[split["id"]]
    assert not done[split["id"]]["error"]["retryable"]
    grown = server.rss() - rss_before
    print(f"server RSS {rss_before / 2**20:.0f} MB before, grew {grown / 2**20:.0f} MB")
    assert grown < 150 * 2**20, "the server itself held a bomb's memory"
    with client(server.url, tokens["mallory"]) as api:
        ok = api.post(
            "/api/v1/executions/", json={"tool": "test-memory-hog", "params": {"megabytes": 20}}
        ).json()
    assert ok["status"] == "completed" and ok["result"] == "held 20 MB"


def test_a_server_killed_twice_mid_burst_loses_no_run(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = Server(env, log)
    tokens = create_users(env, "burst")
    sizes = [(2400 + i, 1800 + i) for i in range(40)]  # ~0.2 s each: a queue builds up
    ids: list[str] = []
    try:
        with client(server.url, tokens["burst"]) as api, ThreadPoolExecutor(8) as senders:
            made = senders.map(
                lambda n: submit_file(api, "image-rotate", f"p{n}.png", png(*sizes[n]), angle=90),
                range(40),
            )
            ids = [m["id"] for m in made]
            first = [api.get(f"/api/v1/executions/{i}/").json()["status"] for i in ids]
        server.kill()  # mid-burst: runs are processing, more are waiting
        server = Server(env, log)
        time.sleep(1.5)
        server.kill()
        server = Server(env, log)
        restarted = time.monotonic()
        with client(server.url, tokens["burst"]) as api:
            done = wait_finished(api, ids, timeout=60)
            recovered_in = time.monotonic() - restarted
            lost = 0
            for execution_id, (w, h) in zip(ids, sizes, strict=True):
                body = done[execution_id]
                assert body["status"] == "completed", body
                got = api.get(f"/api/v1/executions/{execution_id}/download/")
                assert Image.open(io.BytesIO(got.content)).size == (h, w)
                events = api.get(f"/api/v1/executions/{execution_id}/events/").json()
                kinds = [e["type"].rsplit(".", 1)[1] for e in events]
                assert kinds.count("Completed") == 1, kinds
                lost += sum(1 for e in events if e["data"].get("code") == "worker_lost")
        print(
            f"40 runs, two SIGKILLs ({first.count('completed')} done at the first): all completed "
            f"{recovered_in:.1f}s after the last restart; {lost} attempts recovered as worker_lost"
        )
        assert first.count("completed") < 40, "the burst was over before the first kill"
        assert lost >= 1, "no run was caught mid-run by a kill"
        assert recovered_in <= 60
    finally:
        server.stop()
    verified = run_cli("audit", "verify", "--all", **env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_full_queue_answers_503_with_retry_after_and_records_nothing(
    tmp_path: Path, database_url: str
) -> None:
    env = server_env(tmp_path, database_url, TOOL_WORKERS="1", TOOL_QUEUE="0")
    server = Server(env, tmp_path / "server.log")
    try:
        tokens = create_users(env, "first", "second")
        first = client(server.url, tokens["first"])
        second = client(server.url, tokens["second"])
        with ThreadPoolExecutor(1) as background, first, second:
            busy = background.submit(
                first.post, "/api/v1/executions/", json={"tool": "json-validate", "params": REDOS}
            )
            time.sleep(1.0)  # the one worker is held by the catastrophic regex
            hello = {"tool": "base64-encode", "params": {"text": "hi"}}
            refused = second.post("/api/v1/executions/", json=hello)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert refused.json()["code"] == "workers_busy"
            assert int(refused.headers["Retry-After"]) >= 1
            assert second.get("/api/v1/executions/").json()["results"] == []  # nothing recorded
            assert busy.result().json()["error"]["code"] == "time_limit"
            again = second.post("/api/v1/executions/", json=hello)
        assert again.status_code == 201 and again.json()["result"] == "aGk="
    finally:
        server.stop()


@pytest.mark.timed
def test_a_tool_worker_killed_mid_run_costs_one_retry_and_nobody_else_notices(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    tokens = create_users(env, "victim", "neighbour")
    marker = tmp_path / "first-attempt"
    with client(server.url, tokens["victim"]) as api:
        slow = api.post(
            "/api/v1/executions/",
            json={"tool": "test-sleep", "params": {"hang_once_marker": str(marker)}},
        ).json()
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    with client(server.url, tokens["neighbour"]) as api:
        mine = api.post(
            "/api/v1/executions/", json={"tool": "base64-encode", "params": {"text": "hi"}}
        ).json()
        assert mine["status"] == "completed" and mine["result"] == "aGk="
    with client(server.url, tokens["victim"]) as api:
        done = wait_finished(api, [slow["id"]], timeout=30)[slow["id"]]
        events = api.get(f"/api/v1/executions/{slow['id']}/events/").json()
    assert done["status"] == "completed" and done["attempt"] == 2
    kinds = [e["type"].rsplit(".", 1)[1] for e in events]
    assert kinds.count("Completed") == 1
    failed = [e for e in events if e["type"].endswith(".Failed")]
    assert [f["data"]["code"] for f in failed] == ["worker_lost"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the runner's fairness
@pytest.mark.timed
def test_one_users_burst_does_not_hold_back_another_users_run(
    server: Server, env: dict[str, str]
) -> None:
    tokens = create_users(env, "alice", "bob")
    with client(server.url, tokens["alice"]) as alice:
        mine = [
            alice.post(
                "/api/v1/executions/", json={"tool": "test-sleep", "params": {"seconds": 0.5}}
            ).json()["id"]
            for _ in range(20)
        ]
    with client(server.url, tokens["bob"]) as bob:
        theirs = bob.post(
            "/api/v1/executions/", json={"tool": "test-sleep", "params": {"seconds": 0.5}}
        ).json()["id"]
        b = wait_finished(bob, [theirs], timeout=60)[theirs]
    with client(server.url, tokens["alice"]) as alice:
        done = wait_finished(alice, mine, timeout=60)
    starts = sorted(done[i]["started_at"] for i in mine)
    print(f"bob started {b['started_at']}; alice's 5th {starts[4]}")
    assert b["started_at"] < starts[4], (b["started_at"], starts[:6])
