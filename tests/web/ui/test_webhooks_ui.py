"""The Webhooks pages without JavaScript: add an endpoint (its secret shown once), see why one
was turned off, enable, disable, rotate and delete it, and read and act on its delivery log."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from services.webhooks import (
    endpoints as webhook_endpoints,
    messages as webhook_messages,
    tables,
)
from tests.web.api.test_webhooks_api import PUBLIC, fail, messages, run_and_fan_out
from tests.web.deployment import Deployment
from tests.web.ui.page import Page, attr, text
from web import webhooks
from web.parts import parts

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture(autouse=True)
def webhook_tables(deployment: Deployment) -> None:
    tables.setup(parts().read_models())


def add(client: Client, url: str = PUBLIC, **fields: object):
    return client.post("/webhooks/", {"url": url, "description": "", **fields})


def test_the_page_is_in_the_nav_and_its_form_is_labelled(signed_in: Client) -> None:
    nav = Page(signed_in.get("/")).one("nav", aria_label="Main")
    link = next(a for a in Page(signed_in.get("/")).all("a", within=nav) if text(a) == "Webhooks")
    assert attr(link, "href") == "/webhooks/"

    response = signed_in.get("/webhooks/")

    assert response.status_code == 200
    page = Page(response)
    assert attr(page.one("a", href="/webhooks/", within=page.one("nav")), "aria-current") == "page"
    assert text(page.by_id("no-endpoints"))
    form = page.by_id("add-webhook-form")
    for name in ("url", "description", "tools"):
        control = page.one(None, within=form, name=name)
        assert page.label_for(control)
    boxes = page.all("input", within=form, name="event_types")
    assert {attr(b, "value") for b in boxes} >= {
        "MagicToolbox.Execution.Completed",
        "MagicToolbox.Execution.Failed",
    }
    assert all(page.label_for(b) for b in boxes)
    assert text(page.one("legend", within=form)) == "Event types"
    assert attr(page.one("select", within=form, name="tools"), "multiple") is not None


def test_signing_in_is_required(client: Client, deployment: Deployment) -> None:
    response = client.get("/webhooks/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_adding_an_endpoint_shows_its_secret_once(
    signed_in: Client, alice: User, deployment: Deployment
) -> None:
    response = add(
        signed_in,
        description="CI notifier",
        event_types=["MagicToolbox.Execution.Completed", "MagicToolbox.Execution.Failed"],
        tools=["base64-encode"],
    )

    assert response.status_code == 302
    (endpoint,) = webhooks.endpoints(alice)
    assert response["Location"] == f"/webhooks/#endpoint-{endpoint.id}"
    assert endpoint.event_types == (
        "MagicToolbox.Execution.Completed",
        "MagicToolbox.Execution.Failed",
    )
    assert endpoint.tools == ("base64-encode",) and endpoint.description == "CI notifier"

    shown = signed_in.get(response["Location"])
    page = Page(shown)
    secret = text(page.by_id("webhook-secret"))
    assert secret == endpoint.secret and SECRET.fullmatch(secret)
    assert attr(page.by_id("new-secret"), "role") == "status"
    assert "not shown again" in text(page.by_id("new-secret"))
    assert "no-store" in shown["Cache-Control"]
    card = page.by_id(f"endpoint-{endpoint.id}")
    assert PUBLIC in text(card) and "CI notifier" in text(card)
    assert text(page.one(None, within=card, data_field="events")) == "Completed, Failed"
    assert text(page.one(None, within=card, data_field="tools")) == "Base64 encode"
    assert text(page.one(None, within=card, data_field="state")) == "enabled"

    again = signed_in.get("/webhooks/").content.decode()
    assert endpoint.secret not in again and not SECRET.search(again)


def test_an_unsafe_url_is_refused_at_the_field(signed_in: Client, alice: User) -> None:
    for url in ("https://169.254.169.254/", "http://example.com/", "https://10.0.0.1/x"):
        response = add(signed_in, url)
        assert response.status_code == 400
        page = Page(response)
        control = page.one("input", name="url")
        assert attr(control, "aria-invalid") == "true" and attr(control, "value") == url
        assert text(page.by_id(f"{attr(control, 'id')}_error"))
        assert attr(page.by_id("form-errors"), "role") == "alert"
    assert webhooks.endpoints(alice) == []


def test_loopback_is_allowed_only_with_the_setting(
    signed_in: Client, alice: User, configure
) -> None:
    assert add(signed_in, "http://127.0.0.1:9000/hook").status_code == 400
    configure(WEBHOOKS_ALLOW_LOOPBACK_HTTP=True)
    assert add(signed_in, "http://127.0.0.1:9000/hook").status_code == 302
    assert [e.url for e in webhooks.endpoints(alice)] == ["http://127.0.0.1:9000/hook"]


def test_the_page_says_how_many_endpoints_one_may_have(
    signed_in: Client, alice: User, configure
) -> None:
    configure(WEBHOOKS_PER_USER=2)
    page = Page(signed_in.get("/webhooks/"))
    assert text(page.by_id("endpoint-count")) == (
        "You have 0 of the 2 endpoints one user may have."
    )
    assert [add(signed_in, f"{PUBLIC}/{n}").status_code for n in range(2)] == [302, 302]

    response = add(signed_in, f"{PUBLIC}/3")

    assert response.status_code == 400
    page = Page(response)
    assert text(page.by_id("form-errors")) == (
        "The endpoint was not added: you have 2 webhook endpoints, as many as one may have: "
        "delete one to add another"
    )
    assert attr(page.by_id("form-errors"), "role") == "alert"
    assert text(page.by_id("endpoint-count")) == (
        "You have 2 of the 2 endpoints one user may have. Delete one to add another."
    )
    assert len(webhooks.endpoints(alice)) == 2


def test_the_delivery_log_says_how_long_it_is_kept(
    signed_in: Client, alice: User, configure
) -> None:
    configure(WEBHOOK_MESSAGE_RETENTION_DAYS=7)
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    page = Page(signed_in.get(f"/webhooks/{endpoint.id}/"))
    assert text(page.by_id("retention")) == (
        "Messages are kept for 7 days after their last attempt, then deleted with their log."
    )


def test_why_an_endpoint_was_turned_off_is_plain_to_see(signed_in: Client, alice: User) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    webhook_endpoints.disable(parts().read_models(), endpoint.id, "the receiver answered 410 Gone")

    for path in ("/webhooks/", f"/webhooks/{endpoint.id}/"):
        page = Page(signed_in.get(path))
        card = page.by_id(f"endpoint-{endpoint.id}")
        reason = page.one(None, within=card, data_field="disabled-reason")
        assert attr(reason, "role") == "alert"
        assert "the receiver answered 410 Gone" in text(reason)
        assert text(page.one(None, within=card, data_field="state")) == "disabled"

    response = signed_in.post(f"/webhooks/{endpoint.id}/enable/")

    assert response.status_code == 302
    enabled = webhooks.get(alice, endpoint.id)
    assert enabled.enabled and enabled.disabled_reason is None
    page = Page(signed_in.get(response["Location"]))
    card = page.by_id(f"endpoint-{endpoint.id}")
    assert not page.all(None, within=card, data_field="disabled-reason")
    assert text(page.one(None, within=card, data_field="state")) == "enabled"


def test_disable_and_enable(signed_in: Client, alice: User) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    page = Page(signed_in.get("/webhooks/"))
    disable = page.one("form", action=f"/webhooks/{endpoint.id}/disable/")
    assert text(page.one("button", within=disable)).startswith("Disable")

    response = signed_in.post(f"/webhooks/{endpoint.id}/disable/")

    assert response.status_code == 302
    assert not webhooks.get(alice, endpoint.id).enabled
    page = Page(signed_in.get(response["Location"]))
    card = page.by_id(f"endpoint-{endpoint.id}")
    assert "Disabled by you" in text(page.one(None, within=card, data_field="disabled-reason"))
    assert page.all("form", within=card, action=f"/webhooks/{endpoint.id}/enable/")

    signed_in.post(f"/webhooks/{endpoint.id}/enable/", {"next": "detail"})
    assert webhooks.get(alice, endpoint.id).enabled


def test_rotating_shows_the_new_secret_once(signed_in: Client, alice: User) -> None:
    endpoint, old = webhooks.create(alice, url=PUBLIC)

    response = signed_in.post(f"/webhooks/{endpoint.id}/rotate/")

    assert response.status_code == 302
    page = Page(signed_in.get(response["Location"]))
    new = text(page.by_id("webhook-secret"))
    assert SECRET.fullmatch(new) and new != old
    assert new == webhooks.get(alice, endpoint.id).secret
    assert "previous secret keeps signing" in text(page.by_id("new-secret"))
    assert new not in signed_in.get("/webhooks/").content.decode()

    detail = signed_in.post(f"/webhooks/{endpoint.id}/rotate/", {"next": "detail"})
    assert detail["Location"] == f"/webhooks/{endpoint.id}/"
    assert Page(signed_in.get(detail["Location"])).by_id("webhook-secret")


def test_delete_asks_first(signed_in: Client, alice: User) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    page = Page(signed_in.get("/webhooks/"))
    link = page.one("a", href=f"/webhooks/{endpoint.id}/delete/")

    confirm = signed_in.get(attr(link, "href"))

    assert confirm.status_code == 200
    page = Page(confirm)
    assert text(page.one("h1")) == "Delete this webhook endpoint?" and PUBLIC in page.text()
    assert webhooks.endpoints(alice) != []
    form = page.by_id("delete-form")
    assert attr(form, "method") == "post"

    response = signed_in.post(attr(form, "action"))

    assert response.status_code == 302 and response["Location"] == "/webhooks/"
    assert webhooks.endpoints(alice) == []
    assert "was deleted" in text(Page(signed_in.get("/webhooks/")).one("div", class_="messages"))


def test_another_users_endpoint_is_not_found(
    client: Client, alice: User, bob: User, deployment: Deployment
) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    client.force_login(bob)
    assert client.get(f"/webhooks/{endpoint.id}/").status_code == 404
    assert client.get(f"/webhooks/{endpoint.id}/delete/").status_code == 404
    assert client.post(f"/webhooks/{endpoint.id}/delete/").status_code == 404
    assert client.post(f"/webhooks/{endpoint.id}/disable/").status_code == 404
    assert client.post(f"/webhooks/{endpoint.id}/rotate/").status_code == 404
    assert PUBLIC not in client.get("/webhooks/").content.decode()
    assert webhooks.get(alice, endpoint.id).enabled


def test_the_delivery_log_shows_attempts_and_redelivers(
    signed_in: Client, alice: User, deployment: Deployment
) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC, event_types=["Completed"])
    run_and_fan_out(alice, deployment)
    (message,) = messages(endpoint.id)
    fail(message, 502, "Bad Gateway from the proxy")

    page = Page(signed_in.get(f"/webhooks/{endpoint.id}/"))

    item = page.by_id(f"message-{message.id}")
    assert attr(item, "data-status") == "failed"
    assert "Completed" in text(page.one("h3", within=item))
    row = page.one("tr", within=item, data_ok="false")
    assert text(page.one("td", within=row, data_field="http-status")) == "502"
    assert text(page.one("td", within=row, data_field="latency")) == "12.5 ms"
    assert "Bad Gateway from the proxy" in text(page.one("td", within=row, data_field="response"))
    assert [text(th) for th in page.all("th", within=item)][:3] == ["#", "Time", "HTTP status"]
    redeliver = page.one("form", within=item, action=True)

    response = signed_in.post(attr(redeliver, "action"))

    assert response.status_code == 302
    assert response["Location"] == f"/webhooks/{endpoint.id}/#message-{message.id}"
    stored = webhook_messages.get_message(parts().read_models(), message.id)
    assert stored is not None and stored.status == "pending"
    after = Page(signed_in.get(response["Location"]))
    assert attr(after.by_id(f"message-{message.id}"), "data-status") == "pending"
    assert "queued to be sent again" in text(after.one("div", class_="messages"))


def test_the_log_filters_by_status(signed_in: Client, alice: User, deployment: Deployment) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    run_and_fan_out(alice, deployment)
    made = messages(endpoint.id)
    fail(made[0])

    failed = Page(signed_in.get(f"/webhooks/{endpoint.id}/?status=failed"))
    assert [attr(li, "data-status") for li in failed.all("li", data_message_id=True)] == ["failed"]
    everything = Page(signed_in.get(f"/webhooks/{endpoint.id}/"))
    assert len(everything.all("li", data_message_id=True)) == len(made)
    delivered = Page(signed_in.get(f"/webhooks/{endpoint.id}/?status=delivered"))
    assert text(delivered.by_id("no-messages")) == "No delivered messages."


def test_recover_failed_since_a_time(
    signed_in: Client, alice: User, deployment: Deployment
) -> None:
    endpoint, _ = webhooks.create(alice, url=PUBLIC)
    run_and_fan_out(alice, deployment)
    made = messages(endpoint.id)
    for message in made:
        fail(message)
    page = Page(signed_in.get(f"/webhooks/{endpoint.id}/"))
    form = page.by_id("recover-form")
    since = page.one("input", within=form, name="since")
    assert page.label_for(since).startswith("Failed since")
    assert attr(since, "type") == "datetime-local" and attr(since, "value")

    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = signed_in.post(attr(form, "action"), {"since": hour_ago})

    assert response.status_code == 302 and response["Location"] == f"/webhooks/{endpoint.id}/"
    assert {m.status for m in messages(endpoint.id)} == {"pending"}
    note = text(Page(signed_in.get(response["Location"])).one("div", class_="messages"))
    assert f"{len(made)} failed messages queued" in note

    bad = signed_in.post(attr(form, "action"), {"since": "soon"})
    assert bad.status_code == 302
    assert "Give the time" in text(
        Page(signed_in.get(bad["Location"])).one("div", class_="messages")
    )
