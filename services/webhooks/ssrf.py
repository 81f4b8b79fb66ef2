"""SSRF protection: turn a user's webhook URL into the one safe address to connect to.

A URL is accepted only if it is https, carries no credentials, and its host resolves to global
addresses alone: one private, loopback, link-local (the cloud metadata service at
169.254.169.254), multicast, reserved or otherwise non-global address refuses the whole URL,
since a resolver may hand out the addresses in any order. IPv6 addresses that embed an IPv4
one (mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64) are judged by the IPv4 address too. The
caller connects to ``Target.address`` and nowhere else: resolving the name again at connect
time would let a DNS answer with a short TTL swap in another address after the check
(DNS rebinding). ``allow_loopback_http`` is for local development and tests: it admits
loopback addresses, and plain http when the host is only loopback. ``check_url_async`` is the
delivery worker's: the same checks, the lookup asynchronous and within a time limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
AsyncResolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_URL_LENGTH = 2048

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: IPv4 in the low bits
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_PRINTABLE_ASCII = "".join(chr(c) for c in range(33, 127))


class UnsafeURL(ValueError):
    """A URL we will not deliver to; ``code`` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery goes: the URL as given, its parts, and the checked address."""

    url: str
    scheme: str  # "https", or "http" to loopback when allowed
    host: str  # lower-case; IDNA (punycode) for international names; IPv6 without brackets
    port: int
    path_and_query: str  # "/" at least; non-ASCII percent-encoded
    address: str  # the IP to connect to

    @property
    def authority(self) -> str:
        """``host[:port]`` for the Host header: IPv6 in brackets, the default port left out."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (blocking: call it off the loop)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def check_url(
    url: str, *, allow_loopback_http: bool = False, resolve: Resolver = resolve_host
) -> Target:
    """The ``Target`` for ``url``, or ``UnsafeURL`` with a code: ``invalid_url``,
    ``insecure_scheme``, ``unresolvable_host`` or ``forbidden_address``."""
    scheme, host, port, path_and_query = _parse(url, allow_loopback_http)
    addresses = _literal(host)
    if addresses is None:
        try:
            answers = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeURL("unresolvable_host", f"{host} does not resolve: {exc}") from None
        addresses = _addresses(host, answers)
    return _target(url, scheme, host, port, path_and_query, addresses, allow_loopback_http)


async def check_url_async(
    url: str, *, allow_loopback_http: bool = False, resolve: AsyncResolver, timeout: float
) -> Target:
    """``check_url`` with an asynchronous resolver, the lookup given up after ``timeout``
    seconds (``unresolvable_host``). An IP address in the URL needs no lookup at all."""
    scheme, host, port, path_and_query = _parse(url, allow_loopback_http)
    addresses = _literal(host)
    if addresses is None:
        try:
            async with asyncio.timeout(timeout):
                answers = await resolve(host, port)
        except TimeoutError:
            detail = f"{host} did not resolve within {timeout:g} s"
            raise UnsafeURL("unresolvable_host", detail) from None
        except (OSError, UnicodeError) as exc:
            raise UnsafeURL("unresolvable_host", f"{host} does not resolve: {exc}") from None
        addresses = _addresses(host, answers)
    return _target(url, scheme, host, port, path_and_query, addresses, allow_loopback_http)


def _target(
    url: str,
    scheme: str,
    host: str,
    port: int,
    path_and_query: str,
    addresses: list[IPAddress],
    allow_loopback_http: bool,
) -> Target:
    for address in addresses:
        reason = forbidden_reason(address, allow_loopback=allow_loopback_http)
        if reason:
            shown = host if str(address) == host else f"{host} resolves to {address}, which"
            raise UnsafeURL("forbidden_address", f"{shown} is {reason}")
    if scheme == "http" and not all(_unmapped(a).is_loopback for a in addresses):
        raise UnsafeURL("insecure_scheme", "webhook URLs must use https")
    return Target(url, scheme, host, port, path_and_query, str(_unmapped(addresses[0])))


def forbidden_reason(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a webhook may not go to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) address"
        if address.ipv4_mapped is not None:  # a dual-stack socket reaches the IPv4 address
            return forbidden_reason(address.ipv4_mapped, allow_loopback=allow_loopback)
        # The rest are routed through a relay or gateway, never locally: no loopback allowance.
        if address in _NAT64:  # what DNS64 answers on IPv6-only networks: judge the IPv4 part
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            return _embedding(embedded) if forbidden_reason(embedded) else None
        if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
            return "a deprecated IPv4-compatible IPv6 address"
        for embedded in _embedded_ipv4(address):
            if forbidden_reason(embedded):
                return _embedding(embedded)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:  # Python calls most multicast "global"
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT
        return "not a global address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)  # (server, client)
    return embedded


def _embedding(embedded: ipaddress.IPv4Address) -> str:
    return f"an IPv6 address embedding the non-global {embedded}"


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse(url: str, allow_loopback_http: bool) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeURL("invalid_url", f"a URL is a string of at most {MAX_URL_LENGTH} characters")
    # urlsplit silently drops tabs and newlines, and other parsers read "\" as "/": refuse
    # both rather than agree with one parser.
    if any(c <= " " or c in "\\\x7f" for c in url):
        raise UnsafeURL("invalid_url", "a URL may not contain spaces, control characters or \\")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("invalid_url", f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_loopback_http):
        raise UnsafeURL("insecure_scheme", "webhook URLs must use https")
    if not parts.netloc or not parts.hostname:
        raise UnsafeURL("invalid_url", "the URL has no host")
    if "@" in parts.netloc:
        raise UnsafeURL("invalid_url", "a webhook URL may not contain a user name or password")
    if port == 0:
        raise UnsafeURL("invalid_url", "port 0 is not a port")
    host = _host(parts.hostname, bracketed=parts.netloc.startswith("["))
    path_and_query = parts.path or "/"
    if parts.query:
        path_and_query += "?" + parts.query
    if not path_and_query.startswith("/"):
        raise UnsafeURL("invalid_url", "not a valid URL")
    return scheme, host, port or DEFAULT_PORTS[scheme], quote(path_and_query, safe=_PRINTABLE_ASCII)


def _host(hostname: str, *, bracketed: bool) -> str:
    if "%" in hostname:
        raise UnsafeURL("invalid_url", "percent signs and IPv6 zones are not allowed in the host")
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(hostname))
        except ValueError:
            raise UnsafeURL("invalid_url", "brackets hold an IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(hostname))
    except ValueError:
        pass
    try:
        host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeURL("invalid_url", f"{hostname!r} is not a valid host name") from None
    if not _HOSTNAME.match(host):
        raise UnsafeURL("invalid_url", f"{hostname!r} is not a valid host name")
    # Browsers and resolvers (inet_aton) read "127.1", "0x7f.0.0.1" or "2130706433" as IPv4:
    # a host whose last label is a number must be a plain dotted quad, handled above.
    if _NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1]):
        raise UnsafeURL("invalid_url", f"{hostname!r} is neither a host name nor an IPv4 address")
    return host


def _literal(host: str) -> list[IPAddress] | None:
    """The host as an address when it is one (no lookup), else None."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return None


def _addresses(host: str, answers: list[str]) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            raise UnsafeURL("unresolvable_host", f"{host} resolved to {answer!r}") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL("unresolvable_host", f"{host} has no addresses")
    return addresses
