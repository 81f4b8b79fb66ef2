"""Sign-up, log-in, log-out and the account page's API token, as a visitor uses them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.web.ui.page import Page, attr, text

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


def nav_text(client: Client) -> str:
    return text(Page(client.get("/")).one("nav", aria_label="Main"))


def test_sign_up_creates_the_account_and_signs_in(client: Client) -> None:
    page = Page(client.get("/accounts/signup/"))
    for name in ("username", "password1", "password2"):
        field = page.one("input", name=name)
        assert page.label_for(field)

    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 302 and response["Location"] == "/"
    assert User.objects.filter(username="carol").exists()
    nav = nav_text(client)
    assert "Log out" in nav and "carol" in nav and "Log in" not in nav


def test_sign_up_goes_back_to_where_the_visitor_came_from(client: Client) -> None:
    response = client.post(
        "/accounts/signup/?next=/tools/hash-text/",
        {"username": "dave", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response["Location"] == "/tools/hash-text/"

    client.logout()
    response = client.post(
        "/accounts/signup/",
        {
            "username": "erin",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == "/"


def test_a_bad_sign_up_says_why_at_the_field(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"username": "frank", "password1": PASSWORD, "password2": "something-else-1"},
    )

    assert response.status_code == 400
    page = Page(response)
    confirm = page.one("input", name="password2")
    assert attr(confirm, "aria-invalid") == "true"
    assert "match" in text(page.by_id(f"{attr(confirm, 'id')}_error"))
    assert not User.objects.filter(username="frank").exists()


def test_log_in_and_log_out(client: Client, alice: User) -> None:
    page = Page(client.get("/accounts/login/?next=/tools/hash-text/"))
    assert page.label_for(page.one("input", name="username")).startswith("Username")
    assert attr(page.one("input", name="next"), "value") == "/tools/hash-text/"

    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "a-long-secret-42", "next": "/tools/hash-text/"},
    )
    assert response.status_code == 302 and response["Location"] == "/tools/hash-text/"
    assert "Log out" in nav_text(client)

    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Log in" in nav_text(client)


def test_a_wrong_password_is_refused(client: Client, alice: User) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert "correct username and password" in text(Page(response).by_id("form-errors"))


def test_the_account_page_needs_a_signed_in_user(client: Client) -> None:
    response = client.get("/accounts/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/"


def test_a_user_creates_an_api_token_that_is_shown_once(signed_in: Client, alice: User) -> None:
    page = Page(signed_in.get("/accounts/"))
    assert "You have no API token." in text(page.by_id("token-status"))

    response = signed_in.post("/accounts/", {"action": "create"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = Token.objects.get(user=alice).key
    shown = Page(response).by_id("api-token")
    assert shown.name == "code" and text(shown) == key

    again = signed_in.get("/accounts/")
    assert key not in again.content.decode()
    assert "You have a token" in text(Page(again).by_id("token-status"))


def test_regenerating_replaces_the_token_and_deleting_removes_it(
    signed_in: Client, alice: User
) -> None:
    signed_in.post("/accounts/", {"action": "create"})
    old = Token.objects.get(user=alice).key

    response = signed_in.post("/accounts/", {"action": "create"})
    new = Token.objects.get(user=alice).key
    assert new != old and text(Page(response).by_id("api-token")) == new

    signed_in.post("/accounts/", {"action": "revoke"})
    assert not Token.objects.filter(user=alice).exists()


def test_the_token_works_against_the_api(signed_in: Client, alice: User, deployment) -> None:
    response = signed_in.post("/accounts/", {"action": "create"})
    key = text(Page(response).by_id("api-token"))

    api = Client()
    answer = api.get("/api/v1/tools/", headers={"Authorization": f"Token {key}"})

    assert answer.status_code == 200


def test_sign_ins_while_locked_out_are_refused_and_not_recorded(
    client: Client, alice: User
) -> None:
    """Five wrong passwords lock alice out from this address; what comes after is refused with
    the lockout page and leaves her attempts as they were: a flood of guesses neither grows the
    record nor pushes the lockout's end further."""
    from axes.models import AccessAttempt

    form = {"username": "alice", "password": "wrong"}
    answers = [client.post("/accounts/login/", form).status_code for _ in range(5)]
    assert answers == [200] * 4 + [429]
    locked = AccessAttempt.objects.get(username="alice")
    assert locked.failures_since_start == 5

    for n in range(20):
        answer = client.post("/accounts/login/", {"username": "alice", "password": f"guess-{n}"})
        assert answer.status_code == 429
    right = client.post("/accounts/login/", {"username": "alice", "password": "a-long-secret-42"})

    assert right.status_code == 429 and 14 * 60 <= int(right["Retry-After"]) <= 15 * 60
    page = Page(right)
    assert "locked for 15 minutes" in text(page.one("form"))
    after = AccessAttempt.objects.get(username="alice")
    assert after.failures_since_start == 5
    assert after.attempt_time == locked.attempt_time
    assert after.post_data == locked.post_data
    assert "_auth_user_id" not in client.session


def test_the_lockout_page_says_how_long_is_left(client: Client, alice: User) -> None:
    """Ten minutes into a 15-minute lockout, the page and ``Retry-After`` say five are left."""
    from datetime import timedelta

    from axes.models import AccessAttempt

    for _ in range(5):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    locked = AccessAttempt.objects.get(username="alice")
    locked.attempt_time -= timedelta(minutes=10)
    locked.save()

    answer = client.post("/accounts/login/", {"username": "alice", "password": "a-long-secret-42"})

    assert answer.status_code == 429
    assert 290 <= int(answer["Retry-After"]) <= 300
    assert "locked for 5 minutes" in text(Page(answer).one("form"))
