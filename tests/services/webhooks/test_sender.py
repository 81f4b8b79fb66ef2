"""One delivery against real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from services.webhooks import signing
from services.webhooks.schedule import retry_after
from services.webhooks.sender import MAX_RESPONSE_BYTES, Outcome, make_client, send
from services.webhooks.ssrf import Target, check_url
from tests.services.webhooks.endpoint import Answer, Endpoint, Received, TestCA
from tests.services.webhooks.fake_dns import fake_resolver

Start = Callable[..., Endpoint]
BODY = b'{"specversion":"1.0","id":"e1","type":"MagicToolbox.Execution.Completed"}'
SECRET = signing.new_secret()


def target(url: str, names: dict[str, list[str]] | None = None) -> Target:
    return check_url(url, allow_loopback_http=True, resolve=fake_resolver(names or {}))


def deliver(to: Target, **options: Any) -> Outcome:
    headers = signing.headers([SECRET], "msg_1", int(time.time()), BODY)
    return asyncio.run(send(to, headers, BODY, **options))


def answering(answer: Answer) -> Callable[[Received], Answer]:
    return lambda _: answer


def test_a_2xx_is_ok_and_the_request_is_signed(endpoints: Start) -> None:
    endpoint = endpoints(answering(Answer(204)))
    outcome = deliver(target(endpoint.url("/hooks/in?tenant=7")))
    assert (outcome.status, outcome.ok, outcome.error, outcome.gone) == (204, True, None, False)
    assert outcome.latency_ms > 0
    [request] = endpoint.requests
    assert (request.method, request.path, request.body) == ("POST", "/hooks/in?tenant=7", BODY)
    assert request.headers["host"] == f"127.0.0.1:{endpoint.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("MagicToolbox-Webhooks/")
    Webhook(SECRET).verify(request.body, request.headers)  # raises if not


def test_the_name_is_sent_but_the_pinned_address_is_used(endpoints: Start) -> None:
    endpoint = endpoints()
    pinned = target(endpoint.url(host="hooks.test"), {"hooks.test": ["127.0.0.1"]})
    assert pinned.address == "127.0.0.1"
    outcome = deliver(pinned)  # the test's DNS guard fails any real lookup of hooks.test
    assert outcome.ok
    assert endpoint.requests[0].headers["host"] == f"hooks.test:{endpoint.port}"


def test_a_5xx_is_not_ok_and_keeps_an_excerpt(endpoints: Start) -> None:
    endpoint = endpoints(answering(Answer(500, body=b"database on fire \xff" + b"x" * 1000)))
    outcome = deliver(target(endpoint.url()))
    assert (outcome.status, outcome.ok, outcome.error) == (500, False, None)
    assert outcome.response_excerpt.startswith("database on fire \ufffd")
    assert len(outcome.response_excerpt) == 500


def test_410_means_gone(endpoints: Start) -> None:
    endpoint = endpoints(answering(Answer(410)))
    outcome = deliver(target(endpoint.url()))
    assert (outcome.status, outcome.ok, outcome.gone) == (410, False, True)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_kept_on_429_and_503(endpoints: Start, status: int) -> None:
    endpoint = endpoints(answering(Answer(status, {"Retry-After": "120"})))
    outcome = deliver(target(endpoint.url()))
    assert (outcome.status, outcome.ok, outcome.retry_after) == (status, False, "120")
    assert retry_after(outcome.retry_after, datetime.now(UTC)) == 120.0


def test_retry_after_is_ignored_on_other_statuses(endpoints: Start) -> None:
    endpoint = endpoints(answering(Answer(500, {"Retry-After": "120"})))
    assert deliver(target(endpoint.url())).retry_after is None


def test_a_slow_endpoint_times_out(endpoints: Start) -> None:
    endpoint = endpoints(answering(Answer(200, delay=10)))
    started = time.monotonic()
    outcome = deliver(target(endpoint.url()), timeout=0.3)
    assert (outcome.status, outcome.ok, outcome.error) == (None, False, "timeout")
    assert time.monotonic() - started < 3
    assert 250 < outcome.latency_ms < 3000


def test_a_redirect_is_not_followed(endpoints: Start) -> None:
    elsewhere = endpoints()
    endpoint = endpoints(answering(Answer(302, {"Location": elsewhere.url("/stolen")})))
    outcome = deliver(target(endpoint.url()))
    assert (outcome.status, outcome.ok) == (302, False)
    assert len(endpoint.requests) == 1
    assert elsewhere.requests == []


def test_a_refused_connection_is_an_outcome(endpoints: Start) -> None:
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = deliver(target(f"http://127.0.0.1:{port}/"))
    assert (outcome.status, outcome.ok) == (None, False)
    assert outcome.error is not None and outcome.error.startswith("connection refused")


def test_a_large_response_is_read_only_in_part(endpoints: Start) -> None:
    endpoint = endpoints(answering(Answer(200, body=b"y" * (16 * MAX_RESPONSE_BYTES))))
    outcome = deliver(target(endpoint.url()))
    assert outcome.ok
    assert outcome.response_excerpt == "y" * 500


def test_a_shared_client_serves_many_deliveries(endpoints: Start) -> None:
    first, second = endpoints(), endpoints(answering(Answer(201)))

    async def go() -> list[Outcome]:
        async with make_client() as client:
            headers = signing.headers([SECRET], "msg_2", int(time.time()), BODY)
            return await asyncio.gather(
                *(send(target(e.url()), headers, BODY, client=client) for e in (first, second))
            )

    assert [o.status for o in asyncio.run(go())] == [200, 201]


class TestTLS:
    """https to a pinned address: SNI and certificate checks use the name, not the IP."""

    @pytest.fixture
    def tls_endpoint(self, endpoints: Start, tmp_path: Path) -> tuple[Endpoint, TestCA]:
        ca = TestCA.for_names("hooks.test", "other.test")
        return endpoints(tls=ca.server_context(tmp_path)), ca

    def targets(self, endpoint: Endpoint, *names: str) -> list[Target]:
        resolver = fake_resolver({name: ["127.0.0.1"] for name in names})
        return [
            check_url(
                endpoint.url(host=name, scheme="https"), resolve=resolver, allow_loopback_http=True
            )
            for name in names
        ]

    def test_the_name_is_verified_and_connections_are_not_shared_between_names(
        self, tls_endpoint: tuple[Endpoint, TestCA]
    ) -> None:
        endpoint, ca = tls_endpoint
        hooks, other = self.targets(endpoint, "hooks.test", "other.test")

        async def go() -> list[Outcome]:
            async with make_client(ssl_context=ca.client_context()) as client:
                return [
                    await send(to, {"content-type": "application/json"}, BODY, client=client)
                    for to in (hooks, hooks, other, hooks)
                ]

        outcomes = asyncio.run(go())
        assert [o.status for o in outcomes] == [200] * 4, outcomes
        seen = [(r.server_name, r.headers["host"]) for r in endpoint.requests]
        port = endpoint.port
        assert seen == [
            ("hooks.test", f"hooks.test:{port}"),
            ("hooks.test", f"hooks.test:{port}"),
            ("other.test", f"other.test:{port}"),
            ("hooks.test", f"hooks.test:{port}"),
        ]
        # One connection per name: hooks.test's was kept alive and used again.
        assert endpoint.handshakes == ["hooks.test", "other.test"]

    def test_a_certificate_for_another_name_fails(
        self, tls_endpoint: tuple[Endpoint, TestCA]
    ) -> None:
        endpoint, ca = tls_endpoint
        [wrong] = self.targets(endpoint, "wrong.test")

        async def go() -> Outcome:
            async with make_client(ssl_context=ca.client_context()) as client:
                return await send(wrong, {}, BODY, client=client)

        outcome = asyncio.run(go())
        assert (outcome.status, outcome.ok) == (None, False)
        assert outcome.error is not None and outcome.error.startswith("tls error")
        assert "wrong.test" in outcome.error
        assert endpoint.requests == []

    def test_an_untrusted_certificate_fails(self, tls_endpoint: tuple[Endpoint, TestCA]) -> None:
        endpoint, _ = tls_endpoint
        [hooks] = self.targets(endpoint, "hooks.test")
        outcome = deliver(hooks)  # the default trust store knows nothing of the test CA
        assert outcome.error is not None and outcome.error.startswith("tls error")
        assert endpoint.requests == []
