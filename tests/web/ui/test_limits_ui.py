"""The UI's side of the limits: its runs, retries and re-runs count as submits (the API's
``API_THROTTLE_SUBMIT`` counter), and a locked-out sign-in is told why and for how long."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.web.deployment import Configure

pytestmark = pytest.mark.django_db

FORM = {"params-text": "hello", "params-algorithm": "md5"}


def test_a_run_past_the_submit_limit_is_a_429_page_that_says_when(
    signed_in: Client, configure: Configure
) -> None:
    configure(API_THROTTLE_SUBMIT="2/hour")
    first = signed_in.post("/tools/hash-text/", FORM)
    assert first.status_code == 302
    execution = first["Location"]
    assert signed_in.post(f"{execution}replay/").status_code == 302  # a re-run is a submit

    over = signed_in.post("/tools/hash-text/", FORM)
    assert over.status_code == 429 and int(over["Retry-After"]) > 0
    assert "too many runs" in over.content.decode()
    assert signed_in.post(f"{execution}replay/").status_code == 429
    assert signed_in.get("/tools/hash-text/").status_code == 200  # reading is not submitting


def test_after_too_many_wrong_passwords_even_the_right_one_is_refused(
    client: Client, alice: User, configure: Configure
) -> None:
    for _ in range(4):
        wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
        assert wrong.status_code == 200
    locked = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert locked.status_code == 429
    right = client.post("/accounts/login/", {"username": "alice", "password": "a-long-secret-42"})
    assert right.status_code == 429
    assert "Too many failed sign-ins" in right.content.decode()
    assert int(right["Retry-After"]) == 15 * 60
    assert client.get("/accounts/").status_code == 302  # not signed in
