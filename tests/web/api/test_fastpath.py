"""The fast status path answers exactly as the API view would, and only when it can."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
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
