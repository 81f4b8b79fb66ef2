"""Azurite, the Azure Storage emulator, as ``make run-azure`` and the tests start it.

The npm package lives under ``var/node`` (``make azurite`` installs it); it serves Blob Storage on
127.0.0.1 with its published development account (``services.blobs.azure``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AZURITE = PROJECT_ROOT / "var" / "node" / "node_modules" / ".bin" / "azurite-blob"
INSTALL_HINT = "make azurite (npm install --prefix var/node azurite@3.35.0)"


def command(location: Path, port: int) -> list[str]:
    """The command line of a blob service on 127.0.0.1:``port`` keeping its data in ``location``."""
    return [
        str(AZURITE),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(location),
        "--skipApiVersionCheck",  # the SDK may speak a newer API version than this Azurite
        "--disableTelemetry",
        "--loose",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_listening(port: int, alive: Callable[[], bool], timeout: float = 30.0) -> bool:
    """True once 127.0.0.1:``port`` accepts connections; False if ``alive()`` turns false or
    ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while not listening(port):
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
