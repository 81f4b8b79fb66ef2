"""Endpoints stopped after each test, and a guard against real DNS."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.services.webhooks.endpoint import Endpoint


@pytest.fixture(autouse=True)
def no_real_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo for IP literals only: a test that resolves a real name fails loudly."""
    real = socket.getaddrinfo

    def literal_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else host
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise AssertionError(f"a test tried to resolve {host!r} with real DNS") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", literal_only)


@pytest.fixture
def endpoints() -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def start(*args: Any, **kwargs: Any) -> Endpoint:
        endpoint = Endpoint(*args, **kwargs)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.close()
