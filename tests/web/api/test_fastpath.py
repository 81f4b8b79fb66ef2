"""The fast status path answers exactly as the API view would, and only when it can."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import orjson
import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.web.api.test_executions_api import encode
from tests.web.deployment import Deployment
from web.api import fastpath
from web.api.auth import forget_tokens


def scope(path: str, token: str | None, *, query: bytes = b"", **extra: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1")]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    headers += [(k.encode(), v) for k, v in extra.items()]
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": headers,
    }


def token_of(username: str) -> str:
    return Token.objects.get(user__username=username).key


def test_it_answers_a_remembered_token_with_the_views_body_and_headers(
    alice: APIClient, deployment: Deployment
) -> None:
    path = encode(alice).json()["links"]["self"]
    deployment.project()
    key = token_of("alice")
    forget_tokens()
    assert fastpath.answer(scope(path, key)) is None  # not authenticated by Django since
    django = alice.get(path)  # Django answers, and remembers the token
    fast = fastpath.answer(scope(path, key))
    assert fast is not None and orjson.loads(fast) == django.json()
    expected = {
        (name.lower(), value)
        for name, value in django.headers.items()
        if name.lower() not in {"content-length"}
    }
    assert {(n.decode(), v.decode()) for n, v in fastpath.HEADERS} == expected


def test_it_leaves_everything_else_to_django(
    alice: APIClient, bob: APIClient, deployment: Deployment, configure
) -> None:
    mine = encode(alice).json()["links"]["self"]
    theirs = encode(bob).json()["links"]["self"]
    unprojected = encode(alice).json()["links"]["self"]
    deployment.project()
    unprojected_later = encode(alice).json()["links"]["self"]  # after the projector ran
    alice.get(mine)
    bob.get(theirs)
    key = token_of("alice")
    assert fastpath.answer(scope(mine, key)) is not None
    assert unprojected != unprojected_later
    declined = [
        scope(theirs, key),  # another user's: Django says 404
        scope(unprojected_later, key),  # not in the projection yet: Django folds the stream
        scope(mine, key, query=b"format=json"),
        scope(mine, key, cookie=b"sessionid=x"),
        scope(mine, None),
        scope(mine, "not-a-token"),
        scope(mine + "events/", key),
        {**scope(mine, key), "method": "DELETE"},
    ]
    for request in declined:
        assert fastpath.answer(request) is None, request
    configure(API_THROTTLE_USER="0/min")
    assert fastpath.answer(scope(mine, key)) is None  # over the limit: Django says 429
    assert alice.get(mine).status_code == 429


def test_a_revoked_token_is_not_answered(alice: APIClient, deployment: Deployment) -> None:
    path = encode(alice).json()["links"]["self"]
    deployment.project()
    alice.get(path)
    key = token_of("alice")
    Token.objects.all().delete()
    assert fastpath.answer(scope(path, key)) is None


def test_declined_requests_reach_the_application_unchanged(deployment: Deployment) -> None:
    seen: list[dict[str, Any]] = []

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    request = scope("/api/v1/executions/", None)
    asyncio.run(fastpath.with_fast_status(application)(request, None, None))
    assert seen == [request]


def _call(request: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``with_fast_status`` sends for ``request``, and what reached Django instead."""
    sent: list[dict[str, Any]] = []
    passed: list[dict[str, Any]] = []

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        passed.append(scope)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(fastpath.with_fast_status(application)(request, None, send))
    return sent, passed


def test_the_status_is_read_off_the_event_loop_and_the_loop_goes_on_meanwhile(
    alice: APIClient, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = encode(alice).json()["links"]["self"]
    deployment.project()
    alice.get(path)
    read = fastpath.status_model.get
    readers: list[threading.Thread] = []

    def slow_read(db: Any, execution_id: str) -> Any:
        readers.append(threading.current_thread())
        time.sleep(0.5)  # a locked table
        return read(db, execution_id)

    monkeypatch.setattr(fastpath.status_model, "get", slow_read)
    request = scope(path, token_of("alice"))
    ticks: list[float] = []

    async def both() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def tick() -> None:
            for _ in range(20):
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        app = fastpath.with_fast_status(lambda *a: None)  # type: ignore[arg-type]
        await asyncio.gather(app(request, None, send), tick())
        return sent

    sent = asyncio.run(both())
    assert sent[0]["status"] == 200
    assert readers and readers[0] is not threading.main_thread()
    assert len(ticks) == 20 and ticks[-1] - ticks[0] < 0.45  # the loop ticked through the read


def test_a_database_past_its_timeout_is_a_503_problem_not_a_second_wait_in_django(
    alice: APIClient, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = encode(alice).json()["links"]["self"]
    deployment.project()
    alice.get(path)

    def locked(db: Any, execution_id: str) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(fastpath.status_model, "get", locked)
    sent, passed = _call(scope(path, token_of("alice")))
    assert not passed
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"content-type"] == b"application/problem+json"
    assert int(headers[b"retry-after"]) > 0
    assert orjson.loads(body["body"])["code"] == "database_unavailable"

    def bug(db: Any, execution_id: str) -> Any:
        raise sqlite3.OperationalError("no such column: oops")

    monkeypatch.setattr(fastpath.status_model, "get", bug)
    sent, passed = _call(scope(path, token_of("alice")))
    assert not sent and len(passed) == 1  # a bug: Django answers, as it would have anyway


BEHIND_THE_PROXY = override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_SSL_REDIRECT=True,
    SECURE_HSTS_SECONDS=3600,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
)


def test_behind_the_https_proxy_it_sends_hsts_as_django_does_and_leaves_plain_http_to_it(
    alice: APIClient, deployment: Deployment
) -> None:
    path = encode(alice).json()["links"]["self"]
    deployment.project()
    key = token_of("alice")
    with BEHIND_THE_PROXY:
        sent, passed = _call(scope(path, key, **{"x-forwarded-proto": b"https"}))
        assert not passed
        headers = {n.decode(): v.decode() for n, v in sent[0]["headers"]}
        # SecurityMiddleware's form (it reads its settings once, so it is not asked here).
        assert headers["strict-transport-security"] == "max-age=3600; includeSubDomains"
        sent, passed = _call(scope(path, key))  # plain HTTP: Django redirects it
        assert not sent and len(passed) == 1


# -- the event feed -------------------------------------------------------------------------------


def _feed(key: str, query: bytes = b"", **extra: bytes) -> dict[str, Any]:
    return scope("/api/v1/events/", key, query=query, **extra)


def test_a_feed_read_is_answered_with_the_views_bytes_and_headers(
    alice: APIClient, bob: APIClient, deployment: Deployment
) -> None:
    encode(alice)
    encode(bob)
    django = alice.get("/api/v1/events/?after=0&limit=3")  # remembers the token
    sent, passed = _call(_feed(token_of("alice"), b"after=0&limit=3"))
    assert not passed
    start, body = sent
    assert start["status"] == 200
    assert body["body"] == django.content  # the same events, only alice's, byte for byte
    assert orjson.loads(body["body"])["events"]
    expected = {(name.lower(), value) for name, value in django.headers.items()}
    assert {(n.decode(), v.decode()) for n, v in start["headers"]} == expected


def test_the_feed_leaves_to_django_what_only_it_can_answer(
    alice: APIClient, deployment: Deployment, configure
) -> None:
    encode(alice)
    alice.get("/api/v1/events/")
    key = token_of("alice")
    declined = [
        _feed(key, b"after=-1"),  # 400 problem
        _feed(key, b"after="),
        _feed(key, b"after=1&after=2"),
        _feed(key, b"format=json"),
        _feed(key, b"wait=1"),  # no edge in front of it took the wait: the view waits
        _feed(key, cookie=b"sessionid=x"),
        _feed("not-a-token"),
    ]
    for request in declined:
        sent, passed = _call(request)
        assert not sent and len(passed) == 1, request
    configure(API_THROTTLE_USER="0/min")
    sent, passed = _call(_feed(key))
    assert not sent and len(passed) == 1  # over the limit: Django says 429


def test_woken_long_polls_asking_the_same_share_one_read_and_are_not_counted_again(
    alice: APIClient, deployment: Deployment, configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode(alice)
    alice.get("/api/v1/events/")
    configure(API_THROTTLE_USER="0/min")  # a first run would be refused; a repoll is not counted
    reads: list[int] = []
    page = fastpath.feed.page

    def counted(after: int, limit: int, owner: str | None) -> Any:
        reads.append(after)
        time.sleep(0.2)  # long enough for every waiter to ask meanwhile
        return page(after, limit, owner)

    monkeypatch.setattr(fastpath.feed, "page", counted)
    repoll = {"x-magictoolbox-repoll": fastpath.REPOLL_TOKEN.encode()}
    key = token_of("alice")

    async def woken() -> list[list[dict[str, Any]]]:
        async def one(query: bytes) -> list[dict[str, Any]]:
            sent: list[dict[str, Any]] = []

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            app = fastpath.with_fast_status(lambda *a: None)  # type: ignore[arg-type]
            await app(_feed(key, query, **repoll), None, send)
            return sent

        return await asyncio.gather(*[one(b"after=0")] * 20, one(b"after=1"))

    answers = asyncio.run(woken())
    assert sorted(reads) == [0, 1]  # one read per question
    assert all(sent[0]["status"] == 200 for sent in answers)
    assert len({sent[1]["body"] for sent in answers[:20]}) == 1
    forged = _feed(key, **{"x-magictoolbox-repoll": b"guess"})
    sent, passed = _call(forged)
    assert not sent and len(passed) == 1  # a forged repoll is a first run: counted, refused


def test_a_feed_read_past_the_databases_timeout_is_the_same_503_as_the_apis(
    alice: APIClient, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode(alice)
    alice.get("/api/v1/events/")

    def locked(after: int, limit: int, owner: str | None) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(fastpath.feed, "page", locked)
    sent, passed = _call(_feed(token_of("alice")))
    assert not passed
    start, body = sent
    headers = dict(start["headers"])
    problem = orjson.loads(body["body"])
    assert start["status"] == 503 and headers[b"allow"] == b"GET, HEAD, OPTIONS"
    assert problem["code"] == "database_unavailable"
    assert int(headers[b"retry-after"]) == problem["retry_after"] > 0
