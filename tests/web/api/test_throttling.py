"""The throttles' own rules: whose address a request is, and what a Redis outage does to them.

(The attacks themselves, through the real server and with two processes sharing Redis, are in
tests/e2e/test_edge_limits.py.)
"""

from __future__ import annotations

import logging
import time

import pytest
from django.core.cache.backends.redis import RedisCache
from django.test import RequestFactory

from tests.web.deployment import Configure
from web.api import throttling
from web.core.azurite import free_port


def request(remote: str = "192.0.2.1", forwarded: str | None = None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/api/v1/tools/", **meta)


def test_without_trusted_proxies_x_forwarded_for_is_ignored(configure: Configure) -> None:
    configure(TRUSTED_PROXIES=0)
    assert throttling.client_address(request(forwarded="10.0.0.1")) == "192.0.2.1"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "client"),
    [
        (1, "10.0.0.1, 203.0.113.7", "203.0.113.7"),  # what the client wrote is left of it
        (2, "10.0.0.1, 203.0.113.7, 198.51.100.2", "203.0.113.7"),
        (3, "203.0.113.7", "203.0.113.7"),  # fewer entries than proxies: the leftmost
        (1, " , ", "192.0.2.1"),  # nothing usable: the peer
    ],
)
def test_each_trusted_proxy_accounts_for_one_entry_from_the_right(
    configure: Configure, proxies: int, forwarded: str, client: str
) -> None:
    configure(TRUSTED_PROXIES=proxies)
    assert throttling.client_address(request(forwarded=forwarded)) == client


def test_with_redis_down_a_request_goes_through_quickly_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = RedisCache(
        f"redis://127.0.0.1:{free_port()}/0",
        {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}},
    )
    monkeypatch.setattr(throttling, "_last_warning", [0.0])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="web.api.throttling"):
        counted, end = throttling.count(nobody, "throttle_anon_x", 60, time.time())
        throttling.count(nobody, "throttle_anon_x", 60, time.time())
    took = time.monotonic() - started
    assert counted == 0 and end > time.time()
    assert took < 3, f"{took:.1f} s with Redis down"
    warnings = [r for r in caplog.records if "cache is unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once a minute, not once a request
