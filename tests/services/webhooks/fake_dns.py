"""A fake resolver for ``check_url``: the tests must never query a real DNS."""

from __future__ import annotations

import socket
from collections.abc import Callable

Resolver = Callable[[str, int], list[str]]


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
