"""The delivery worker's DNS against a DNS server on 127.0.0.1: what it answers, how a lookup
that takes too long ends, and that lookups wait side by side, not in a queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from services.webhooks.resolver import DnsResolver
from services.webhooks.ssrf import Target, UnsafeURL, check_url_async
from tests.services.webhooks.dns_stub import DnsStub

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
Stubs = Callable[..., DnsStub]


def resolver_for(stub: DnsStub, **options: float) -> DnsResolver:
    return DnsResolver(["127.0.0.1"], port=stub.port, **options)


def run(coroutine):  # the worker's loop is uvloop's
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def test_both_families_are_returned_ipv4_first(dns_stubs: Stubs) -> None:
    stub = dns_stubs({"hooks.example.test": [PUBLIC_V6, PUBLIC]})
    resolve = resolver_for(stub)
    assert run(resolve("hooks.example.test", 443)) == [PUBLIC, PUBLIC_V6]


def test_an_unknown_name_and_a_name_without_addresses_are_errors(dns_stubs: Stubs) -> None:
    stub = dns_stubs({"empty.example.test": []})
    resolve = resolver_for(stub)
    with pytest.raises(OSError, match="no such name"):
        run(resolve("nowhere.example.test", 443))
    with pytest.raises(OSError, match="no address records"):
        run(resolve("empty.example.test", 443))


def test_localhost_is_loopback_without_a_query(dns_stubs: Stubs) -> None:
    stub = dns_stubs({})
    resolve = resolver_for(stub)
    assert run(resolve("localhost", 80)) == ["127.0.0.1", "::1"]
    assert run(resolve("api.localhost.", 80)) == ["127.0.0.1", "::1"]
    assert stub.queries == []


def test_answers_are_cached_for_their_ttl(dns_stubs: Stubs) -> None:
    kept = dns_stubs({"hooks.example.test": [PUBLIC]}, ttl=60)
    fleeting = dns_stubs({"hooks.example.test": [PUBLIC]}, ttl=0)

    async def twice(resolve: DnsResolver) -> None:
        for _ in range(2):
            assert await resolve("hooks.example.test", 443) == [PUBLIC]

    run(twice(resolver_for(kept)))
    run(twice(resolver_for(fleeting)))
    assert (kept.lookups("hooks.example.test"), fleeting.lookups("hooks.example.test")) == (1, 2)


def test_a_slow_lookup_fails_the_check_within_its_timeout(dns_stubs: Stubs) -> None:
    stub = dns_stubs({"slow.example.test": [PUBLIC]}, delays={"slow.example.test": 4.0})
    started = time.monotonic()
    with pytest.raises(UnsafeURL) as refused:
        run(
            check_url_async(
                "https://slow.example.test/hook", resolve=resolver_for(stub), timeout=0.5
            )
        )
    took = time.monotonic() - started
    assert refused.value.code == "unresolvable_host"
    assert str(refused.value) == "slow.example.test did not resolve within 0.5 s"
    assert took < 2.0, took


def test_the_lifetime_ends_a_lookup_too(dns_stubs: Stubs) -> None:
    stub = dns_stubs({"slow.example.test": [PUBLIC]}, delays={"slow.example.test": 4.0})
    resolve = resolver_for(stub, lifetime=0.5)
    with pytest.raises(OSError, match=r"no answer within 0\.5 s"):
        run(resolve("slow.example.test", 443))


def test_slow_lookups_wait_side_by_side_and_an_address_needs_none(dns_stubs: Stubs) -> None:
    slow = {f"slow{i}.example.test": [PUBLIC] for i in range(48)}
    stub = dns_stubs({**slow, "quick.example.test": [PUBLIC]}, delays=dict.fromkeys(slow, 2.0))
    resolve = resolver_for(stub)

    async def go() -> tuple[float, float, list[Target]]:
        t0 = time.monotonic()
        names = [
            asyncio.create_task(check_url_async(f"https://{n}/", resolve=resolve, timeout=10))
            for n in slow
        ]
        await asyncio.sleep(0.1)  # every slow lookup asked and waiting
        literal = await check_url_async(f"https://{PUBLIC}/", resolve=resolve, timeout=10)
        quick = await check_url_async("https://quick.example.test/", resolve=resolve, timeout=10)
        assert (literal.address, quick.address) == (PUBLIC, PUBLIC)
        quick_done = time.monotonic() - t0
        targets = await asyncio.gather(*names)
        return quick_done, time.monotonic() - t0, targets

    quick_done, all_done, targets = run(go())
    assert quick_done < 1.0, quick_done  # neither waited behind the 48 slow lookups
    assert [t.address for t in targets] == [PUBLIC] * 48
    assert all_done < 3.5, all_done  # 48 lookups of 2 s took about 2 s, not 48 * 2 / threads
