"""Endpoints and DNS stubs stopped after each test, and guards against real DNS."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import dns.asyncresolver
import pytest

from tests.services.webhooks.dns_stub import DnsStub
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

    # The delivery worker's own resolver asks name servers itself: only the tests' stub.
    real_resolve = dns.asyncresolver.Resolver.resolve

    async def stub_only(self: dns.asyncresolver.Resolver, *args: Any, **kwargs: Any) -> Any:
        for server in self.nameservers:
            if not ipaddress.ip_address(str(server)).is_loopback:
                raise AssertionError(f"a test tried to query the name server {server}")
        return await real_resolve(self, *args, **kwargs)

    monkeypatch.setattr(dns.asyncresolver.Resolver, "resolve", stub_only)


@pytest.fixture
def dns_stubs() -> Iterator[Callable[..., DnsStub]]:
    started: list[DnsStub] = []

    def start(*args: Any, **kwargs: Any) -> DnsStub:
        stub = DnsStub(*args, **kwargs)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.close()


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
