"""A fake resolver for ``check_url``: the tests must never query a real DNS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

Resolver = Callable[[str, int], list[str]]
AsyncResolver = Callable[[str, int], Awaitable[list[str]]]


def fake_resolver(names: dict[str, list[str]]) -> Resolver:
    """A fake DNS (the tests must not query a real one): ``names`` maps a host to its IPs;
    any other name does not resolve. Every lookup is recorded in ``.calls``."""
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(names[host])

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def fake_async_resolver(names: dict[str, list[str]]) -> AsyncResolver:
    """``fake_resolver`` for the delivery worker, which awaits its lookups."""
    resolve = fake_resolver(names)

    async def lookup(host: str, port: int) -> list[str]:
        await asyncio.sleep(0)
        return resolve(host, port)

    lookup.calls = resolve.calls  # type: ignore[attr-defined]
    return lookup
