"""``magictoolbox eventgrid-emulator`` as a user runs it: a process, a config file, SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient

from tests.services.eventgrid.receiver import Receiver
from tests.services.eventgrid.support import KEY

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_serves_the_sdk_delivers_and_stops_cleanly_on_sigterm(tmp_path):
    config = {
        "topic": {"name": "magictoolbox", "key": "${TEST_TOPIC_KEY}"},
        "subscriptions": [
            {
                "name": "image",
                "endpoint": "http://127.0.0.1:${TEST_RECEIVER_PORT}/events",
                "filter": {"subjectBeginsWith": "/tools/image/"},
            }
        ],
    }
    path = tmp_path / "eventgrid.json"
    path.write_text(json.dumps(config))
    port = free_port()
    with Receiver() as receiver:
        env = {
            **os.environ,
            "TEST_TOPIC_KEY": "not the key: --key overrides it",
            "TEST_RECEIVER_PORT": str(receiver.port),
        }
        command = [sys.executable, "-m", "web.manage", "eventgrid-emulator", "--config", str(path)]
        command += ["--port", str(port), "--retry-scale", "0.001", "--key", KEY]
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout], daemon=True
        )
        reader.start()
        try:
            banner = _wait_for_line(lines, "Event Grid emulator:", timeout=60)
            endpoint = f"http://127.0.0.1:{port}/api/events"
            assert banner.strip() == f"Event Grid emulator: {endpoint} (1 subscriptions)"
            _wait_until_active(f"http://127.0.0.1:{port}/emulator/status")

            client = EventGridPublisherClient(endpoint, AzureKeyCredential(KEY))
            event = CloudEvent(source="/s", type="t", subject="/tools/image/x", data={"n": 1})
            client.send([event])
            [delivered] = receiver.wait_for(1)
            assert delivered["id"] == event.id

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    reader.join(timeout=5)
    output = []
    while not lines.empty():
        output.append(lines.get())
    assert any("Event Grid emulator stopped." in line for line in output), output


def _wait_for_line(lines: queue.Queue[str], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"no {text!r} in time; the process said:\n{''.join(seen)}")


def _wait_until_active(status_url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = httpx.get(status_url).json()
        if status["subscriptions"]["image"]["active"]:
            return
        time.sleep(0.02)
    raise AssertionError("the subscription did not become active")
