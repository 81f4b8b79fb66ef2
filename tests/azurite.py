"""Azurite, the Azure Storage emulator, for every test that needs Azure Blob Storage.

Azurite is the npm package installed under ``var/node`` (the Makefile does it). Without it those
tests are skipped, except under CI=true, where that would hide a broken setup and so fails
instead. It listens on 127.0.0.1 only. tests/conftest.py loads this as a
plugin, so the ``azurite`` fixture is there for every test.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.blobs.azure import azurite_connection_string
from tests.conftest import IN_CI

__all__ = ["azurite", "azurite_connection_string", "free_port"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AZURITE = PROJECT_ROOT / "var" / "node" / "node_modules" / ".bin" / "azurite-blob"
INSTALL_HINT = "npm install --prefix var/node azurite@3.35.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Azurite blob service for the session; yields its connection string."""
    if not AZURITE.exists():
        reason = f"Azurite is not installed at {AZURITE} (install it: `{INSTALL_HINT}`)"
        if IN_CI:
            pytest.fail(f"Azurite is required under CI=true: {reason}")
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("azurite")
    port = free_port()
    log_path = workdir / "azurite.log"
    command = [
        str(AZURITE),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(workdir / "data"),
        "--skipApiVersionCheck",  # the SDK may speak a newer API version than this Azurite
        "--disableTelemetry",
        "--loose",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        # A file, not a pipe: nobody reads a pipe while tests run, and a full pipe blocks Azurite.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"Azurite did not start on 127.0.0.1:{port}:\n{output}")
            time.sleep(0.1)
        yield azurite_connection_string(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
