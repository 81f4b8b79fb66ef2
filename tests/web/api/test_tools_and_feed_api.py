"""The tool catalogue, the global event feed (with long polling) and the published schema."""

from __future__ import annotations

import json
import threading
import time

from rest_framework.test import APIClient

from tests.web.api.conftest import client_for
from tests.web.api.test_executions_api import assert_problem, encode
from tests.web.deployment import Deployment
from web.parts import parts


def test_the_tool_list_describes_every_tool_with_its_parameter_schema(deployment, db) -> None:
    tools = APIClient().get("/api/v1/tools/").json()
    slugs = {t["slug"] for t in tools}
    assert {"base64-encode", "image-rotate", "pdf-merge", "video-rotate"} <= slugs
    rotate = next(t for t in tools if t["slug"] == "image-rotate")
    assert rotate["mode"] == "async" and rotate["takes_input"] is True
    assert rotate["params_schema"]["properties"]["angle"]["maximum"] == 360
    assert ".png" in rotate["accepts"] and rotate["url"] == "/api/v1/tools/image-rotate/"
    images = APIClient().get("/api/v1/tools/?category=image").json()
    assert images and {t["category"] for t in images} == {"image"}


def test_one_tool_and_an_unknown_one(deployment, db) -> None:
    encode_tool = APIClient().get("/api/v1/tools/base64-encode/").json()
    assert encode_tool["mode"] == "sync" and encode_tool["takes_input"] is False
    assert "text" in encode_tool["params_schema"]["required"]
    assert_problem(APIClient().get("/api/v1/tools/nope/"), 404, "unknown_tool")


def test_the_feed_shows_a_user_their_own_events_and_staff_everything(
    alice: APIClient, bob: APIClient, deployment: Deployment
) -> None:
    from django.contrib.auth.models import User

    mine = encode(alice, "a").json()["id"]
    theirs = encode(bob, "b").json()["id"]
    page = alice.get("/api/v1/events/?after=0").json()
    subjects = {e["subject"].rsplit("/", 1)[-1] for e in page["events"]}
    assert subjects == {mine}
    assert page["next_after"] == page["head"] == deployment.store.head_position()
    assert [e["streamposition"] for e in page["events"]] == sorted(
        e["streamposition"] for e in page["events"]
    )

    staff = User.objects.create_user("root", password="pw-root-123", is_staff=True)
    everything = client_for(staff).get("/api/v1/events/?after=0").json()
    assert {e["subject"].rsplit("/", 1)[-1] for e in everything["events"]} == {mine, theirs}

    later = alice.get(f"/api/v1/events/?after={page['next_after']}").json()
    assert later["events"] == []


def test_the_feed_pages_by_limit_without_skipping(alice: APIClient, deployment: Deployment) -> None:
    for i in range(4):
        encode(alice, str(i))
    seen, after = [], 0
    while True:
        page = alice.get(f"/api/v1/events/?after={after}&limit=5").json()
        if not page["events"]:
            break
        seen += [e["id"] for e in page["events"]]
        after = page["next_after"]
    assert len(seen) == len(set(seen)) == deployment.store.head_position()


def test_a_long_poll_returns_as_soon_as_an_event_arrives(
    alice: APIClient, deployment: Deployment
) -> None:
    from django.contrib.auth.models import User

    owner = str(User.objects.get(username="alice").pk)
    head = deployment.store.head_position()

    def later() -> None:  # another writer, as the web process's other requests would be
        parts().executions.submit(owner, "base64-encode", {"text": "late"}, run_sync=False)

    threading.Timer(0.4, later).start()
    started = time.monotonic()
    page = alice.get(f"/api/v1/events/?after={head}&wait=10").json()
    waited = time.monotonic() - started
    assert page["events"] and page["events"][0]["type"].endswith("Submitted")
    assert 0.3 < waited < 8


def test_a_long_poll_with_nothing_new_returns_empty_after_the_wait(
    alice: APIClient, deployment: Deployment
) -> None:
    started = time.monotonic()
    page = alice.get("/api/v1/events/?after=0&wait=0.5").json()
    assert page["events"] == [] and time.monotonic() - started >= 0.45


def test_feed_arguments_are_checked(alice: APIClient) -> None:
    assert_problem(alice.get("/api/v1/events/?after=-1"), 400, "invalid_request")
    assert_problem(alice.get("/api/v1/events/?wait=99"), 400, "invalid_request")
    assert_problem(alice.get("/api/v1/events/?limit=abc"), 400, "invalid_request")


def test_the_openapi_schema_and_its_docs_are_served_locally(deployment, db) -> None:
    client = APIClient()
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/api/v1/tools/",
        "/api/v1/executions/",
        "/api/v1/executions/{id}/",
        "/api/v1/executions/{id}/events/",
        "/api/v1/executions/{id}/download/",
        "/api/v1/executions/{id}/cancel/",
        "/api/v1/executions/{id}/retry/",
        "/api/v1/events/",
    ):
        assert path in paths, path
    submit = paths["/api/v1/executions/"]["post"]
    assert {"201", "202", "400", "413", "415"} <= set(submit["responses"])
    assert "multipart/form-data" in submit["requestBody"]["content"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "https://" not in html
