"""Webhook endpoints through the REST API: registering one (its secret shown once, unsafe URLs
refused), changing, rotating and deleting it, and reading and acting on its delivery log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from services.webhooks import (
    endpoints as webhook_endpoints,
    messages as webhook_messages,
    tables,
)
from tests.web.api.test_executions_api import assert_problem
from tests.web.deployment import Configure, Deployment
from web import executions
from web.parts import parts

HOOKS = "/api/v1/webhooks/"
PUBLIC = "https://93.184.215.14/hooks/magictoolbox"  # an IP literal: no DNS in the tests


@pytest.fixture(autouse=True)
def webhook_tables(deployment: Deployment) -> None:
    tables.setup(parts().read_models())


def add(client: APIClient, url: str = PUBLIC, **fields: Any):
    return client.post(HOOKS, {"url": url, **fields}, format="json")


def run_and_fan_out(user: User, deployment: Deployment, text: str = "hello") -> None:
    """Run a sync tool as ``user`` (real events in the store) and turn the feed into messages,
    as the delivery worker does."""
    executions.submit(user, "base64-encode", {"text": text}, None)
    db = parts().read_models()
    position = webhook_messages.checkpoint(db)
    assert (
        webhook_messages.fan_out(db, deployment.store.read_all(position, 1000), position)
        is not None
    )


def fail(message: webhook_messages.Message, status: int = 500, response: str = "boom") -> None:
    webhook_messages.record_attempt(
        parts().read_models(),
        message,
        status=status,
        ok=False,
        latency_ms=12.5,
        response=response,
        error=None,
        next_attempt_at=None,
    )


def messages(endpoint_id: str) -> list[webhook_messages.Message]:
    return webhook_messages.messages(parts().read_models(), endpoint_id)


# -- registering ---------------------------------------------------------------------------------


def test_a_new_endpoint_shows_its_secret_once(alice: APIClient) -> None:
    response = add(alice, description="my receiver", event_types=["Completed"])

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["url"] == PUBLIC and created["description"] == "my receiver"
    assert created["event_types"] == ["MagicToolbox.Execution.Completed"]
    assert created["tools"] == [] and created["enabled"] is True
    assert created["disabled_reason"] is None and created["failing_since"] is None
    assert response["Location"] == created["links"]["self"] == f"{HOOKS}{created['id']}/"
    assert response["Cache-Control"] == "no-store"

    listed = alice.get(HOOKS).json()
    assert [e["id"] for e in listed] == [created["id"]]
    one = alice.get(created["links"]["self"]).json()
    for shown in (listed[0], one):
        assert "secret" not in shown and created["secret"] not in str(shown)
    assert one == {k: v for k, v in created.items() if k != "secret"}


def test_event_types_short_or_full_and_tools_are_checked(alice: APIClient) -> None:
    created = add(
        alice,
        event_types=["Failed", "MagicToolbox.Execution.Completed", "Completed"],
        tools=["base64-encode", "image-rotate"],
    ).json()
    assert created["event_types"] == [
        "MagicToolbox.Execution.Failed",
        "MagicToolbox.Execution.Completed",
    ]
    assert created["tools"] == ["base64-encode", "image-rotate"]

    assert_problem(add(alice, event_types=["Exploded"]), 400, "invalid_event_type")
    assert_problem(add(alice, event_types=["Other.Completed"]), 400, "invalid_event_type")
    assert_problem(add(alice, tools=["no-such-tool"]), 400, "unknown_tool")
    assert_problem(add(alice, event_types="Completed"), 400, "invalid_request")
    assert_problem(alice.post(HOOKS, {}, format="json"), 400, "invalid_request")
    assert len(alice.get(HOOKS).json()) == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "forbidden_address"),
        ("http://127.0.0.1:8080/hook", "insecure_scheme"),
        ("https://10.0.0.1/hook", "forbidden_address"),
        ("https://169.254.169.254/latest/meta-data/", "forbidden_address"),
        ("https://[::1]/hook", "forbidden_address"),
        ("http://example.com/hook", "insecure_scheme"),
        ("https://user:pw@93.184.215.14/hook", "invalid_url"),
        ("not a url", "invalid_url"),
        ("ftp://93.184.215.14/hook", "insecure_scheme"),
    ],
)
def test_unsafe_urls_are_refused(alice: APIClient, url: str, reason: str) -> None:
    body = assert_problem(add(alice, url), 400, "unsafe_url")
    assert body["reason"] == reason
    assert alice.get(HOOKS).json() == []


def test_loopback_http_is_allowed_only_where_the_deployment_says_so(
    alice: APIClient, configure: Configure
) -> None:
    configure(WEBHOOKS_ALLOW_LOOPBACK_HTTP=True)
    assert add(alice, "http://127.0.0.1:8765/hook").status_code == 201
    assert add(alice, "https://127.0.0.1/hook").status_code == 201
    # Private and link-local addresses stay refused: the setting is for loopback alone.
    for url in ("http://10.0.0.1/hook", "https://10.0.0.1/hook", "http://169.254.169.254/"):
        assert assert_problem(add(alice, url), 400, "unsafe_url")["reason"] in {
            "forbidden_address",
            "insecure_scheme",
        }
    assert len(alice.get(HOOKS).json()) == 2


def test_one_user_has_at_most_the_settings_endpoints(
    alice: APIClient, bob: APIClient, configure: Configure
) -> None:
    configure(WEBHOOKS_PER_USER=3)
    assert [add(alice, f"{PUBLIC}/{n}").status_code for n in range(3)] == [201] * 3

    body = assert_problem(add(alice), 409, "webhook_limit_reached")
    assert body["limit"] == 3 and "delete one to add another" in body["detail"]
    assert len(alice.get(HOOKS).json()) == 3
    assert add(bob).status_code == 201  # another user's count is their own
    alice.delete(alice.get(HOOKS).json()[0]["links"]["self"])
    assert add(alice).status_code == 201


def test_another_users_endpoint_is_not_found(alice: APIClient, bob: APIClient) -> None:
    created = add(alice).json()
    url = created["links"]["self"]

    assert_problem(bob.get(url), 404, "webhook_not_found")
    assert_problem(bob.patch(url, {"enabled": False}, format="json"), 404, "webhook_not_found")
    assert_problem(bob.delete(url), 404, "webhook_not_found")
    assert_problem(bob.post(f"{url}rotate-secret/"), 404, "webhook_not_found")
    assert_problem(bob.get(f"{url}deliveries/"), 404, "webhook_not_found")
    since = {"since": "2020-01-01T00:00:00Z"}
    assert_problem(bob.post(f"{url}recover/", since, format="json"), 404, "webhook_not_found")
    assert_problem(bob.get(f"{HOOKS}not-a-uuid/"), 404, "webhook_not_found")
    assert bob.get(HOOKS).json() == []
    assert alice.get(url).json()["enabled"] is True


def test_signing_in_is_required(deployment: Deployment) -> None:
    assert_problem(APIClient().get(HOOKS), 401, "not_authenticated")
    anonymous = APIClient().post(HOOKS, {"url": PUBLIC}, format="json")
    assert_problem(anonymous, 401, "not_authenticated")


# -- changing -------------------------------------------------------------------------------------


def test_patch_changes_only_what_is_sent_and_checks_the_url_again(alice: APIClient) -> None:
    created = add(alice, description="first", tools=["base64-encode"]).json()
    url = created["links"]["self"]

    changed = alice.patch(url, {"description": "second", "event_types": ["Failed"]}, format="json")
    assert changed.status_code == 200
    body = changed.json()
    assert body["description"] == "second" and body["event_types"] == [
        "MagicToolbox.Execution.Failed"
    ]
    assert body["url"] == PUBLIC and body["tools"] == ["base64-encode"]

    refused = alice.patch(url, {"url": "https://169.254.169.254/"}, format="json")
    assert assert_problem(refused, 400, "unsafe_url")["reason"] == "forbidden_address"
    assert_problem(alice.patch(url, {"tools": ["nope"]}, format="json"), 400, "unknown_tool")
    assert alice.get(url).json()["url"] == PUBLIC

    moved = alice.patch(url, {"url": "https://1.1.1.1/new"}, format="json").json()
    assert moved["url"] == "https://1.1.1.1/new"
    assert "secret" not in moved


def test_disable_and_enable_again_clears_the_reason(alice: APIClient) -> None:
    created = add(alice).json()
    url = created["links"]["self"]

    off = alice.patch(url, {"enabled": False}, format="json").json()
    assert off["enabled"] is False and off["disabled_reason"] is None

    webhook_endpoints.disable(
        parts().read_models(), created["id"], "the endpoint answered 410 Gone"
    )
    shown = alice.get(url).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "the endpoint answered 410 Gone"

    on = alice.patch(url, {"enabled": True}, format="json").json()
    assert on["enabled"] is True and on["disabled_reason"] is None


def test_rotating_gives_a_new_secret_and_keeps_the_old_one_for_a_day(alice: APIClient) -> None:
    created = add(alice).json()
    before = datetime.now(UTC)

    response = alice.post(f"{created['links']['rotate_secret']}")

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    until = datetime.fromisoformat(rotated["previous_valid_until"].replace("Z", "+00:00"))
    assert before + timedelta(hours=23.9) < until < datetime.now(UTC) + timedelta(hours=24.1)
    endpoint = webhook_endpoints.get_endpoint(parts().read_models(), created["id"])
    assert endpoint is not None
    assert endpoint.secrets(datetime.now(UTC)) == [rotated["secret"], created["secret"]]
    assert endpoint.secrets(until + timedelta(seconds=1)) == [rotated["secret"]]
    assert rotated["secret"] not in str(alice.get(created["links"]["self"]).json())


def test_the_overlap_follows_the_setting(alice: APIClient, configure: Configure) -> None:
    configure(WEBHOOK_SECRET_OVERLAP_HOURS=1)
    created = add(alice).json()
    rotated = alice.post(created["links"]["rotate_secret"]).json()
    until = datetime.fromisoformat(rotated["previous_valid_until"].replace("Z", "+00:00"))
    assert until < datetime.now(UTC) + timedelta(hours=1, minutes=1)


def test_delete_removes_the_endpoint_and_its_log(alice: APIClient, deployment: Deployment) -> None:
    created = add(alice).json()
    run_and_fan_out(User.objects.get(username="alice"), deployment)
    assert messages(created["id"])

    response = alice.delete(created["links"]["self"])

    assert response.status_code == 204
    assert_problem(alice.get(created["links"]["self"]), 404, "webhook_not_found")
    assert alice.get(HOOKS).json() == []
    assert messages(created["id"]) == []


# -- the delivery log -----------------------------------------------------------------------------


def test_the_delivery_log_shows_messages_with_their_attempts(
    alice: APIClient, deployment: Deployment
) -> None:
    created = add(alice, event_types=["Completed", "Submitted"]).json()
    run_and_fan_out(User.objects.get(username="alice"), deployment, "one")
    run_and_fan_out(User.objects.get(username="alice"), deployment, "two")
    made = messages(created["id"])
    names = [m.event_type.rsplit(".", 1)[-1] for m in made]
    assert names == ["Completed", "Submitted", "Completed", "Submitted"]
    newest = made[0]
    fail(newest, 503, "busy, come back later")
    again = webhook_messages.get_message(parts().read_models(), newest.id)
    assert again is not None
    webhook_messages.record_attempt(
        parts().read_models(),
        again,
        status=200,
        ok=True,
        latency_ms=8.25,
        response="ok",
        error=None,
        next_attempt_at=None,
    )
    fail(made[1], None, "")  # type: ignore[arg-type]

    log = alice.get(created["links"]["deliveries"])

    assert log.status_code == 200
    results = log.json()["results"]
    assert [m["id"] for m in results] == [m.id for m in made]
    first = results[0]
    assert first["status"] == "delivered" and first["attempts"] == 2
    assert first["event_type"] == "MagicToolbox.Execution.Completed"
    assert first["next_attempt_at"] is None
    assert [(a["attempt"], a["status"], a["ok"]) for a in first["attempt_log"]] == [
        (1, 503, False),
        (2, 200, True),
    ]
    assert first["attempt_log"][0]["response"] == "busy, come back later"
    assert first["attempt_log"][0]["latency_ms"] == 12.5
    assert first["attempt_log"][1]["latency_ms"] == pytest.approx(8.25, abs=0.06)
    assert results[1]["status"] == "failed" and results[1]["attempt_log"][0]["status"] is None
    assert results[2]["status"] == "pending" and results[2]["attempt_log"] == []
    assert results[2]["next_attempt_at"] is not None

    failed = alice.get(f"{created['links']['deliveries']}?status=failed").json()["results"]
    assert [m["id"] for m in failed] == [made[1].id]
    limited = alice.get(f"{created['links']['deliveries']}?limit=1").json()["results"]
    assert [m["id"] for m in limited] == [made[0].id]
    bad = alice.get(f"{created['links']['deliveries']}?status=lost")
    assert_problem(bad, 400, "invalid_request")


def test_only_the_owners_events_become_messages(
    alice: APIClient, bob: APIClient, deployment: Deployment
) -> None:
    created = add(alice).json()
    run_and_fan_out(User.objects.get(username="bob"), deployment)
    assert alice.get(created["links"]["deliveries"]).json()["results"] == []


def test_redeliver_puts_a_message_back_in_the_queue(
    alice: APIClient, bob: APIClient, deployment: Deployment
) -> None:
    created = add(alice, event_types=["Completed"]).json()
    run_and_fan_out(User.objects.get(username="alice"), deployment)
    (message,) = messages(created["id"])
    fail(message)
    redeliver = f"{created['links']['self']}deliveries/{message.id}/redeliver/"

    response = alice.post(redeliver)

    assert response.status_code == 202
    body = response.json()
    assert body["id"] == message.id and body["status"] == "pending"
    assert [a["status"] for a in body["attempt_log"]] == [500]  # the log keeps the attempt
    stored = webhook_messages.get_message(parts().read_models(), message.id)
    assert stored is not None and stored.status == "pending"
    assert stored.next_attempt_at is not None
    assert stored.next_attempt_at <= datetime.now(UTC)

    # Through another endpoint, or as someone else, the message is not there.
    other = add(alice, "https://1.1.1.1/other").json()
    elsewhere = f"{other['links']['self']}deliveries/{message.id}/redeliver/"
    assert_problem(alice.post(elsewhere), 404, "message_not_found")
    assert_problem(bob.post(redeliver), 404, "webhook_not_found")
    unknown = (
        f"{created['links']['self']}deliveries/00000000-0000-0000-0000-000000000000/redeliver/"
    )
    assert_problem(alice.post(unknown), 404, "message_not_found")


def test_recover_requeues_what_failed_since_a_time(
    alice: APIClient, deployment: Deployment
) -> None:
    created = add(alice).json()
    run_and_fan_out(User.objects.get(username="alice"), deployment)
    made = messages(created["id"])
    assert len(made) == 3  # Submitted, Processing, Completed
    for message in made[:2]:
        fail(message)
    recover = created["links"]["recover"]

    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    nothing = alice.post(recover, {"since": later}, format="json")
    assert nothing.status_code == 202 and nothing.json() == {"requeued": 0}

    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    response = alice.post(recover, {"since": earlier}, format="json")

    assert response.status_code == 202 and response.json() == {"requeued": 2}
    assert {m.status for m in messages(created["id"])} == {"pending"}
    assert alice.post(recover, {"since": earlier}, format="json").json() == {"requeued": 0}
    vague = alice.post(recover, {"since": "yesterday"}, format="json")
    assert_problem(vague, 400, "invalid_request")


def test_the_schema_documents_the_webhook_api(deployment: Deployment) -> None:
    schema = APIClient().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert set(paths[HOOKS]) >= {"get", "post"}
    assert set(paths[HOOKS + "{id}/"]) >= {"get", "patch", "delete"}
    tails = ("rotate-secret/", "deliveries/", "deliveries/{message_id}/redeliver/", "recover/")
    for tail in tails:
        assert HOOKS + "{id}/" + tail in paths
    created = paths[HOOKS]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"]["$ref"].endswith("/WebhookCreated")
    assert "application/problem+json" in paths[HOOKS]["post"]["responses"]["400"]["content"]
