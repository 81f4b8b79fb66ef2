"""The webhook worker's own DNS: asynchronous lookups on the event loop, with a time limit.

A thread pool (the loop's default executor) runs a few ``getaddrinfo`` calls at a time, and a
lookup there cannot be stopped: a dozen names whose DNS takes seconds filled it and held up every
other delivery, an IP address's too, for half a minute. ``DnsResolver`` asks the name servers of
``/etc/resolv.conf`` (or those it is given) itself, over the loop's own sockets (dnspython), so a
lookup costs no thread, as many wait at once as deliveries are in flight, and the caller's
timeout ends one. Answers are cached for their TTL. The hosts file is not read: webhooks go to
public names; ``localhost`` (RFC 6761) answers loopback without a query.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

LIFETIME = 15.0  # seconds a lookup may take at most (the caller's timeout usually ends it first)
# Seconds one name server has to answer before the next is asked (or the same one again):
# the system resolver's default (glibc); dnspython's 2 s would never hear a server taking 3.
TRY_TIMEOUT = 5.0
LOOPBACK = ["127.0.0.1", "::1"]


class DnsResolver:
    """``await resolver(host, port)``: every IPv4 and IPv6 address of ``host``, or ``OSError``
    saying why there is none (no such name, no address, no answer in time)."""

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        lifetime: float = LIFETIME,
        try_timeout: float = TRY_TIMEOUT,
        cache: bool = True,
    ) -> None:
        """``nameservers`` (IP addresses, at ``port``) instead of the system's (tests)."""
        self._nameservers = list(nameservers) if nameservers is not None else None
        self._port = port
        self._lifetime = lifetime
        self._try_timeout = try_timeout
        self._cache = dns.resolver.Cache() if cache else None
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._lock = threading.Lock()

    def _configured(self) -> dns.asyncresolver.Resolver:
        with self._lock:  # one configuration, whichever loop asks first
            if self._resolver is None:
                try:
                    resolver = dns.asyncresolver.Resolver(configure=self._nameservers is None)
                except dns.exception.DNSException as exc:  # no /etc/resolv.conf
                    raise OSError(f"no DNS configuration: {exc}") from None
                if self._nameservers is not None:
                    resolver.nameservers = self._nameservers
                    resolver.port = self._port
                resolver.lifetime = self._lifetime
                resolver.timeout = self._try_timeout
                resolver.cache = self._cache
                self._resolver = resolver
            return self._resolver

    async def __call__(self, host: str, port: int) -> list[str]:
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            return list(LOOPBACK)
        resolver = self._configured()
        try:
            # Both families at once: the caller judges every address the name has.
            v6, v4 = await asyncio.gather(
                resolver.resolve(host, dns.rdatatype.AAAA, search=False, raise_on_no_answer=False),
                resolver.resolve(host, dns.rdatatype.A, search=False, raise_on_no_answer=False),
            )
        except dns.resolver.NXDOMAIN:
            raise OSError("no such name") from None
        except dns.resolver.LifetimeTimeout:
            raise OSError(f"no answer within {self._lifetime:g} s") from None
        except dns.exception.DNSException as exc:
            raise OSError(str(exc) or type(exc).__name__) from None
        addresses = [r.address for answer in (v4, v6) if answer.rrset for r in answer.rrset]
        if not addresses:
            raise OSError("no address records")
        return addresses
