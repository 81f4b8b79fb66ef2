"""A running emulator per test, stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.eventgrid.emulator import EmulatorServer
from services.eventgrid.subscriptions import EmulatorConfig
from tests.services.eventgrid.support import FAST_HANDSHAKES

Run = Callable[..., EmulatorServer]


@pytest.fixture
def run_emulator() -> Iterator[Run]:
    """Start an emulator for a config (retries compressed a thousandfold); stopped after."""
    servers: list[EmulatorServer] = []

    def start(config: EmulatorConfig, retry_scale: float = 0.001, **options: Any):
        options.setdefault("handshake_delays", FAST_HANDSHAKES)
        wait = options.pop("wait_for_handshakes", True)
        server = EmulatorServer(config, retry_scale=retry_scale, **options)
        servers.append(server)
        return server.start(wait_for_handshakes=wait)

    yield start
    for server in servers:
        server.stop()
