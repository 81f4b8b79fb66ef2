"""Bodies at the edge, through the real server (``magictoolbox run``: uvicorn and Django's ASGI
handler, which the test client never goes through): a body over its route's limit is refused
before it is read, a chunked one is cut off at the limit, an anonymous upload is refused before
a byte of it is read, and an accepted upload is written once, straight into blob storage.

What the server wrote is read from ``/proc/<pid>/io`` (``wchar``: every byte it passed to
``write``), so a spool file, a parsed-upload temp file or a second copy shows up as bytes.
"""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.contained import Server, client, create_users, png, server_env
from tests.e2e.edge import Bystander, repeat

pytestmark = pytest.mark.timeout(300)

MB = 1024 * 1024


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The edge refuses or streams before a database is asked: one backend, the embedded one."""
    return f"sqlite:///{tmp_path / 'app.sqlite3'}"


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    # No Functions host: an accepted upload is stored and waits, so the server's writes are the
    # upload's alone (a run would copy its input into the worker's scratch directory).
    return server_env(tmp_path, database_url, FUNCTIONS_IN_PROCESS="0")


@pytest.fixture
def tokens(server: Server, env: dict[str, str]) -> dict[str, str]:
    return create_users(env, "uploader", "bystander")


@pytest.fixture
def bystander(server: Server, tokens: dict[str, str]) -> Bystander:
    watcher = Bystander(server.url, tokens["bystander"])
    watcher.measure_idle()
    return watcher


def written(pid: int) -> int:
    """Bytes the process has passed to write() so far."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise AssertionError("no wchar")


def _answer(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0


def send_chunked(url_port: int, path: str, total: int, headers: str = "") -> tuple[int, int]:
    """POST ``total`` bytes chunked, as fast as the server takes them, stopping when it answers.
    (status, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", url_port))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: application/octet-stream\r\n{headers}\r\n".encode()
    )
    piece = b"x" * (256 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(chunk)
            sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    head = _answer(sock)
    sock.close()
    return _status(head), sent


def declare(url_port: int, path: str, length: int, headers: str = "") -> tuple[int, float]:
    """Declare a ``length``-byte body, send 64 KiB of it; (status, seconds to the answer)."""
    sock = socket.create_connection(("127.0.0.1", url_port))
    started = time.monotonic()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        f"Content-Type: application/json\r\n{headers}\r\n".encode()
        + b"x" * 65536
    )
    head = _answer(sock)
    took = time.monotonic() - started
    sock.close()
    return _status(head), took


@pytest.mark.timed
def test_an_anonymous_chunked_flood_to_the_event_grid_receiver_is_cut_off_at_its_limit(
    server: Server, bystander: Bystander
) -> None:
    before = written(server.pid)
    with bystander.watching():
        floods = repeat(lambda: send_chunked(server.port, "/eventgrid/events", 700 * MB))
    wrote = written(server.pid) - before
    most = max(sent for _, sent in floods)
    print(
        f"{len(floods)} floods, at most {most / MB:.0f} MB sent before the 413; "
        f"the server wrote {wrote / MB:.2f} MB"
    )
    assert {status for status, _ in floods} == {413}
    assert most < 64 * MB, "the server kept reading long past the 1 MB limit"
    assert wrote < len(floods) * 2 * MB, f"the server wrote {wrote} bytes of refused bodies"
    bystander.check()


@pytest.mark.timed
def test_a_declared_oversize_body_is_refused_before_it_is_read(
    server: Server, bystander: Bystander
) -> None:
    before = written(server.pid)
    routes = [
        ("/api/v1/executions/", 600 * MB),
        ("/eventgrid/events", 2 * MB),
        ("/api/v1/webhooks/", 5 * MB),
        ("/accounts/login/", 5 * MB),
    ]
    with bystander.watching():
        rounds = repeat(lambda: [declare(server.port, path, size) for path, size in routes])
    wrote = written(server.pid) - before
    answers = [answer for one in rounds for answer in one]
    print(f"{len(answers)} refused; the server wrote {wrote} bytes")
    assert {status for status, _ in answers} == {413}
    assert max(took for _, took in answers) < 2, answers
    assert wrote < MB
    bystander.check()


@pytest.mark.timed
def test_an_anonymous_upload_is_refused_before_its_body_is_read(
    server: Server, bystander: Bystander
) -> None:
    before = written(server.pid)

    def attack() -> tuple[tuple[int, int], int, int, tuple[int, int]]:
        return (
            send_chunked(server.port, "/api/v1/executions/", 300 * MB),
            declare(server.port, "/api/v1/executions/", 200 * MB)[0],
            declare(
                server.port,
                "/api/v1/executions/",
                200 * MB,
                "Authorization: Token not-a-token\r\n",
            )[0],
            send_chunked(server.port, "/tools/image-rotate/", 300 * MB),
        )

    with bystander.watching():
        rounds = repeat(attack)
    wrote = written(server.pid) - before
    print(f"{len(rounds)} rounds of anonymous uploads; the server wrote {wrote} bytes")
    for (api_status, api_sent), declared, forged, (ui_status, ui_sent) in rounds:
        assert (api_status, declared, forged, ui_status) == (401, 401, 401, 401)
        assert api_sent < 64 * MB and ui_sent < 64 * MB
    assert wrote < MB
    bystander.check()


def test_an_accepted_upload_is_written_once_straight_to_blob_storage(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    size = 40 * MB
    data = png(64, 64) + os.urandom(size)  # a PNG by its magic bytes; nothing decodes it here
    before = written(server.pid)
    with client(server.url, tokens["uploader"]) as api:
        answer = api.post(
            "/api/v1/executions/",
            data={"tool": "image-rotate", "params": '{"angle": 90}'},
            files={"file": ("big.png", data, "image/png")},
        )
    wrote = written(server.pid) - before
    print(f"a {len(data) / MB:.0f} MB upload: the server wrote {wrote / MB:.1f} MB")
    assert answer.status_code == 202, answer.text
    stored = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file() and "uploads" in p.parts]
    assert [p.stat().st_size for p in stored] == [len(data)]
    assert stored[0].read_bytes() == data
    assert wrote < 1.2 * len(data), "the upload was written more than once"


def test_a_streamed_upload_refuses_a_field_after_the_file_and_keeps_nothing(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    boundary = "edge-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="tool"\r\n\r\nimage-rotate\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png(8, 8)
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n'
            f'{{"angle": 90}}\r\n--{boundary}--\r\n'
        ).encode()
    )
    with client(server.url, tokens["uploader"]) as api:
        answer = api.post(
            "/api/v1/executions/",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        mine = api.get("/api/v1/executions/").json()["results"]
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "field_after_file"
    assert mine == []
    stored = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file() and "uploads" in p.parts]
    assert stored == []
