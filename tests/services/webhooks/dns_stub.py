"""A DNS server on 127.0.0.1 for the resolver's tests: real queries over UDP, answered from a
table, each name after its own delay (a slow authority), so no test asks a real DNS."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsStub:
    """Answers A (and AAAA) queries for ``names`` after ``delays[name]`` seconds (0 unless
    given); any other name is NXDOMAIN. ``queries`` records (name, type, time.monotonic())."""

    def __init__(
        self,
        names: dict[str, list[str]],
        delays: dict[str, float] | None = None,
        ttl: int = 0,
    ) -> None:
        self.names = {name.rstrip(".").lower(): list(ips) for name, ips in names.items()}
        self.delays = {name.rstrip(".").lower(): d for name, d in (delays or {}).items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str, float]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="dns-stub", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                data, peer = self._sock.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            with self._lock:
                kind = dns.rdatatype.to_text(question.rdtype)
                self.queries.append((name, kind, time.monotonic()))
            delay = self.delays.get(name, 0.0)
            answer = threading.Timer(delay, self._answer, args=(query, name, peer))
            answer.daemon = True
            answer.start()

    def _answer(self, query: dns.message.Message, name: str, peer: tuple[str, int]) -> None:
        response = dns.message.make_response(query)
        question = query.question[0]
        if name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            family = {dns.rdatatype.A: "A", dns.rdatatype.AAAA: "AAAA"}.get(question.rdtype)
            ips = [ip for ip in self.names[name] if (":" in ip) == (family == "AAAA")]
            if family and ips:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, self.ttl, "IN", family, ips)
                )
        if not self._closed:
            with contextlib.suppress(OSError):  # closed meanwhile
                self._sock.sendto(response.to_wire(), peer)

    def lookups(self, name: str) -> int:
        """How many A queries ``name`` got."""
        with self._lock:
            return sum(1 for n, kind, _ in self.queries if n == name and kind == "A")

    def close(self) -> None:
        self._closed = True
        self._sock.close()
