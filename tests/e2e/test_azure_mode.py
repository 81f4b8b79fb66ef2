"""Azure mode end to end, offline: web → PostgreSQL → relay → Event Grid emulator (real SDK) →
the Functions host's HTTP trigger → functions → PostgreSQL → projections; blobs on Azurite.

See tests/e2e/azure_mode.py for the processes. PostgreSQL and Azurite are required under CI.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.eventgrid import EventGridPublisherClient
from azure.storage.blob import BlobServiceClient
from PIL import Image
from standardwebhooks.webhooks import Webhook

from events.envelope import execution_stream
from events.opening import open_store
from tests.conftest import require_postgres
from tests.e2e.azure_mode import RECEIVER_KEY, TOPIC_KEY, AzureMode, azure_mode
from tests.services.webhooks.endpoint import Endpoint, Received
from tests.web.support import run_cli

pytestmark = [pytest.mark.timeout(240), pytest.mark.postgres]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, azurite: str) -> Iterator[AzureMode]:
    require_postgres()
    with azure_mode(tmp_path_factory.mktemp("azure-mode"), azurite) as mode:
        yield mode


def png(width: int = 40, height: int = 20) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), "white")
    image.putpixel((0, 0), (255, 0, 0))  # a red corner, to see where the rotation took it
    image.save(out, "PNG")
    return out.getvalue()


def wait_until(check: Any, timeout: float, what: str, mode: AzureMode) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n{mode.logs()}")


def run_async_execution(mode: AzureMode) -> dict[str, Any]:
    with mode.api() as api:
        submitted = api.post(
            "/api/v1/executions/",
            data={"tool": "image-rotate", "params": json.dumps({"angle": 90})},
            files={"file": ("corner.png", png(), "image/png")},
        )
        assert submitted.status_code == 202, submitted.text
        execution = submitted.json()

        def completed() -> dict[str, Any] | None:
            row = api.get(f"/api/v1/executions/{execution['id']}/").json()
            return row if row["status"] in {"completed", "failed"} else None

        return wait_until(completed, 90, "the execution to finish", mode)


@pytest.fixture(scope="module")
def finished(deployment: AzureMode) -> dict[str, Any]:
    return run_async_execution(deployment)


def stream_ids(mode: AzureMode, execution_id: str) -> list[str]:
    with mode.api() as api:
        events = api.get(f"/api/v1/executions/{execution_id}/events/").json()
    items = events["results"] if isinstance(events, dict) else events
    return [e["id"] for e in items]


def audit_ids(mode: AzureMode) -> list[str]:
    return [e["id"] for e in mode.audit.events()]


def test_an_async_execution_completes_through_event_grid(
    deployment: AzureMode, finished: dict[str, Any]
) -> None:
    assert finished["status"] == "completed", finished
    with deployment.api() as api:
        output = api.get(f"/api/v1/executions/{finished['id']}/download/")
    assert output.status_code == 200
    rotated = Image.open(io.BytesIO(output.content))
    assert rotated.size == (20, 40)  # 90° turned the 40 by 20 picture on its side
    # The work ran in the Functions host, reached through Event Grid: the web runs no host.
    status = deployment.emulator_status()
    image = status["subscriptions"]["image"]
    assert image["delivered"] >= 2  # Submitted and Uploaded at least


def test_the_executions_events_arrive_at_a_second_subscriber(
    deployment: AzureMode, finished: dict[str, Any]
) -> None:
    ids = stream_ids(deployment, finished["id"])
    assert len(ids) >= 4  # Submitted, Uploaded, Processing, Completed (and progress)
    wait_until(
        lambda: set(ids) <= {e["id"] for e in deployment.audit.events()},
        30,
        "every event at the second subscriber",
        deployment,
    )
    received = [e for e in deployment.audit.events() if finished["id"] in e["subject"]]
    types = {e["type"].rsplit(".", 1)[-1] for e in received}
    assert {"Submitted", "Uploaded", "Processing", "Completed"} <= types
    assert all(e["source"] == "/magictoolbox/e2e" for e in received)


def test_a_subscriber_that_fails_is_retried_then_dead_lettered(
    deployment: AzureMode, finished: dict[str, Any]
) -> None:
    service = BlobServiceClient.from_connection_string(deployment.azurite)
    container = service.get_container_client("deadletters")

    def letters() -> list[dict[str, Any]]:
        found = []
        for blob in container.list_blobs(name_starts_with="magictoolbox-local/broken/"):
            found += orjson.loads(container.download_blob(blob.name).readall())
        return [e for e in found if finished["id"] in e.get("subject", "")]

    def settled() -> bool:
        broken = deployment.emulator_status()["subscriptions"]["broken"]
        return broken["queued"] == 0 and broken["inFlight"] == 0

    wait_until(letters, 30, "dead letters of the broken subscriber", deployment)
    wait_until(settled, 30, "the broken subscriber's retries to end", deployment)
    dead = letters()
    # CloudEvents attribute names are lower case, so Event Grid's dead-letter fields are too.
    assert {e["deadletterreason"] for e in dead} == {"MaxDeliveryAttemptsExceeded"}
    assert {e["deliveryattempts"] for e in dead} == {3}
    assert {e["lastdeliveryoutcome"] for e in dead} == {"InternalServerError"}
    assert all(e["lasthttpstatuscode"] == 500 for e in dead)
    failed_ids = [e["id"] for e in deployment.broken.events()]
    dead_ids = [e["id"] for e in dead]
    for event_id in dead_ids:
        # Three tries before each dead letter. (An event may be published twice, by the web's
        # relay and the relay timer at once: then it is tried and dead-lettered twice.)
        assert failed_ids.count(event_id) == 3 * dead_ids.count(event_id)


def test_a_delivery_without_the_key_is_refused_and_appends_nothing(
    deployment: AzureMode, finished: dict[str, Any]
) -> None:
    store = open_store(deployment.database_url)
    try:
        head = store.head_position()
        events = store.read_stream(execution_stream(finished["id"]))
        forged = EventGridPublisherClient(deployment.topic_endpoint, AzureKeyCredential("forged"))
        with pytest.raises(ClientAuthenticationError) as refused:
            forged.send([e.to_cloudevent() for e in events])
        assert refused.value.status_code == 401

        body = orjson.dumps([e.to_cloudevent() for e in events])
        keyless = httpx.post(
            f"{deployment.web_url}/eventgrid/events",
            content=body,
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert keyless.status_code == 401
        assert keyless.json()["code"] == "unauthorized"
        time.sleep(0.5)
        assert store.head_position() == head
    finally:
        store.close()


def test_the_same_events_published_twice_have_no_duplicate_effect(
    deployment: AzureMode, finished: dict[str, Any]
) -> None:
    store = open_store(deployment.database_url)
    try:
        stream = execution_stream(finished["id"])
        before = store.read_stream(stream)
        audit_before = audit_ids(deployment).count(str(before[0].id))
        publisher = EventGridPublisherClient(
            deployment.topic_endpoint, AzureKeyCredential(TOPIC_KEY)
        )
        publisher.send([e.to_cloudevent() for e in before])
        publisher.send([e.to_cloudevent() for e in before])

        # Delivered again (at least once, twice more to the audit subscriber) …
        wait_until(
            lambda: audit_ids(deployment).count(str(before[0].id)) >= audit_before + 2,
            30,
            "the republished events at the subscriber",
            deployment,
        )
        wait_until(
            lambda: all(
                s["queued"] == 0 and s["inFlight"] == 0
                for name, s in deployment.emulator_status()["subscriptions"].items()
                if name != "broken"
            ),
            30,
            "the emulator to drain",
            deployment,
        )
        # … and the functions ran on them, yet nothing happened twice.
        assert store.read_stream(stream) == before
        with deployment.api() as api:
            assert api.get(f"/api/v1/executions/{finished['id']}/").json()["status"] == "completed"
    finally:
        store.close()


def test_the_web_receiver_takes_keyed_deliveries(deployment: AzureMode) -> None:
    status = deployment.emulator_status()
    web = status["subscriptions"]["web"]
    assert web["active"] and web["delivered"] >= 1
    answer = httpx.post(
        f"{deployment.web_url}/eventgrid/events",
        content=b"[]",
        headers={"X-MagicToolbox-Key": RECEIVER_KEY},
    )
    assert answer.status_code == 400  # keyed, but an empty batch is not a delivery


def test_relay_lag_is_shown_by_projections_status(
    deployment: AzureMode, finished: dict[str, Any]
) -> None:
    def relay_row() -> list[str] | None:
        shown = run_cli("projections", "status", **deployment.env)
        assert shown.returncode == 0, shown.stderr
        rows = {line.split()[0]: line.split() for line in shown.stdout.splitlines()[1:]}
        row = rows["relay"]  # reader, checkpoint, head, lag, last error
        return row if row[3] == "0" else None

    row = wait_until(relay_row, 30, "the relay to catch up", deployment)
    assert int(row[1]) == int(row[2]) > 0


def test_a_users_webhook_gets_the_completion_signed_in_azure_mode(deployment: AzureMode) -> None:
    """User webhooks ride the same path: the web's worker (woken by Event Grid) delivers."""
    endpoint = Endpoint()
    try:
        with deployment.api() as api:
            created = api.post(
                "/api/v1/webhooks/",
                json={"url": endpoint.url("/hooks"), "event_types": ["Completed"]},
            )
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
        finished = run_async_execution(deployment)

        def completion() -> Received | None:
            return next((r for r in endpoint.requests if finished["id"].encode() in r.body), None)

        received = wait_until(completion, 30, "the webhook delivery", deployment)
        Webhook(secret).verify(received.body, received.headers)  # raises if the signature is off
        event = orjson.loads(received.body)
        assert event["type"] == "MagicToolbox.Execution.Completed"
        assert received.headers["webhook-id"] == event["id"]
        assert [r for r in endpoint.requests if finished["id"].encode() in r.body] == [received]
    finally:
        endpoint.close()
