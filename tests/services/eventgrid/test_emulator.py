"""The Event Grid emulator, driven by the real azure-eventgrid SDK and pushing to a real local
HTTP endpoint: publishing, refusals, handshakes, schemas, filters, batching and isolation."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from services.eventgrid.protocol import CLOUDEVENTS, EVENTGRID, MAX_BATCH_BYTES
from services.eventgrid.subscriptions import ConfigError
from tests.services.eventgrid.receiver import Receiver
from tests.services.eventgrid.support import KEY, TOPIC, make_config, publisher, subscription

SUBMITTED = "MagicToolbox.Execution.Submitted"
OTHER_KEY = base64.b64encode(b"another key of thirty-two bytes!").decode()


def submitted(tool: str = "image-rotate", category: str = "image", **data: object) -> CloudEvent:
    return CloudEvent(
        source="/magictoolbox/local",
        type=SUBMITTED,
        subject=f"/tools/{category}/{tool}/executions/1",
        data={"tool": tool, **data},
    )


def test_a_published_cloudevent_reaches_the_subscriber_as_event_grid_pushes_it(run_emulator):
    static = {"name": "X-MagicToolbox-Key", "type": "Static", "properties": {"value": "secret"}}
    dynamic = {"name": "X-Tool", "type": "Dynamic", "properties": {"sourceField": "data.tool"}}
    with Receiver() as receiver:
        config = make_config(
            subscription("image", receiver.url, deliveryAttributeMappings=[static, dynamic])
        )
        server = run_emulator(config)
        event = submitted()
        publisher(server).send([event])
        [delivered] = receiver.wait_for(1)

    assert delivered["id"] == event.id
    assert delivered["type"] == SUBMITTED
    assert delivered["subject"] == "/tools/image/image-rotate/executions/1"
    assert delivered["data"] == {"tool": "image-rotate"}
    [handshake] = receiver.handshakes
    assert handshake.method == "OPTIONS"
    assert handshake.headers["webhook-request-origin"] == "eventgrid.azure.net"
    assert handshake.headers["x-magictoolbox-key"] == "secret"
    [push] = receiver.notifications
    assert push.headers["content-type"] == "application/cloudevents-batch+json; charset=utf-8"
    assert push.headers["aeg-delivery-count"] == "0"
    assert push.headers["aeg-subscription-name"] == "image"
    assert push.headers["aeg-metadata-version"] == "1"
    assert "aeg-data-version" in push.headers
    assert push.headers["x-magictoolbox-key"] == "secret"
    assert push.headers["x-tool"] == "image-rotate"
    status = server.status()["subscriptions"]["image"]
    assert status["active"] and status["delivered"] == 1 and status["queued"] == 0


def test_a_sas_token_from_generate_sas_is_accepted_and_an_expired_one_refused(run_emulator):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        valid = generate_sas(server.endpoint, KEY, datetime.now(UTC) + timedelta(minutes=5))
        EventGridPublisherClient(server.endpoint, AzureSasCredential(valid)).send([submitted()])
        receiver.wait_for(1)

        expired = generate_sas(server.endpoint, KEY, datetime.now(UTC) - timedelta(seconds=1))
        forged = generate_sas(server.endpoint, OTHER_KEY, datetime.now(UTC) + timedelta(hours=1))
        for token in (expired, forged):
            client = EventGridPublisherClient(server.endpoint, AzureSasCredential(token))
            with pytest.raises(HttpResponseError) as refused:
                client.send([submitted()])
            assert refused.value.status_code == 401
            assert refused.value.error.code == "Unauthorized"
        time.sleep(0.2)
    assert len(receiver.notifications) == 1
    assert "expired" in str(_refusal(server, expired))


def _refusal(server, token: str) -> str:
    response = httpx.post(
        server.endpoint,
        params={"api-version": "2018-01-01"},
        headers={"aeg-sas-token": token},
        json=[],
    )
    return response.json()["error"]["message"]


def test_a_wrong_key_or_none_is_refused_with_401_and_nothing_is_delivered(run_emulator):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        with pytest.raises(HttpResponseError) as refused:
            publisher(server, key="not the key").send([submitted()])
        assert refused.value.status_code == 401
        anonymous = httpx.post(
            server.endpoint, params={"api-version": "2018-01-01"}, json=[_cloudevent_dict()]
        )
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "Unauthorized"
        time.sleep(0.2)
    assert receiver.notifications == []
    assert server.status()["accepted"] == 0


def _cloudevent_dict(**fields: object) -> dict:
    return {"specversion": "1.0", "id": "1", "source": "/s", "type": SUBMITTED, **fields}


def test_a_publish_over_1_mb_is_refused_with_413_by_length_and_while_reading(run_emulator):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        with pytest.raises(HttpResponseError) as refused:
            publisher(server).send([submitted(blob="x" * MAX_BATCH_BYTES)])
        assert refused.value.status_code == 413
        assert refused.value.error.code == "RequestEntityTooLarge"

        def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(MAX_BATCH_BYTES // 65536 + 2):
                yield b" " * 65536

        chunked = httpx.post(
            server.endpoint,
            params={"api-version": "2018-01-01"},
            headers={"aeg-sas-key": KEY, "content-type": "application/cloudevents-batch+json"},
            content=chunks(),
        )
        assert chunked.status_code == 413
        time.sleep(0.2)
    assert receiver.notifications == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}', "JSON array"),
        (b"[]", "no events"),
        (b'[{"specversion": "1.0", "id": "1", "type": "t"}]', "source"),
        (
            b'[{"id": "1", "eventType": "t", "subject": "s", "eventTime": "2024-01-01T00:00:00Z",'
            b' "dataVersion": "1", "data": {}}]',
            "EventGridSchema",
        ),
    ],
    ids=["not-json", "not-an-array", "empty", "missing-source", "wrong-schema"],
)
def test_a_malformed_batch_is_refused_with_400_and_nothing_of_it_delivered(
    run_emulator, body, reason
):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        good = b'{"specversion": "1.0", "id": "2", "source": "/s", "type": "t"}'
        mixed = body if not body.startswith(b"[{") else b"[" + good + b"," + body[1:]
        response = httpx.post(
            server.endpoint,
            params={"api-version": "2018-01-01"},
            headers={"aeg-sas-key": KEY, "content-type": "application/cloudevents-batch+json"},
            content=mixed,
        )
        time.sleep(0.1)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert reason in response.json()["error"]["message"]
    assert receiver.notifications == []


def test_the_sdk_sees_the_400_of_an_event_in_the_wrong_schema(run_emulator):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        event = EventGridEvent(subject="/s", event_type="t", data={}, data_version="1")
        with pytest.raises(HttpResponseError) as refused:
            publisher(server).send([event])
    assert refused.value.status_code == 400
    assert refused.value.error.code == "BadRequest"


def test_an_event_grid_topic_validates_and_delivers_either_schema(run_emulator):
    with Receiver() as grid, Receiver() as cloud:
        config = make_config(
            subscription("grid", grid.url, eventDeliverySchema=EVENTGRID),
            subscription("cloud", cloud.url, eventDeliverySchema=CLOUDEVENTS),
            schema=EVENTGRID,
        )
        server = run_emulator(config)
        event = EventGridEvent(
            subject="/tools/image/image-rotate/executions/1",
            event_type=SUBMITTED,
            data={"tool": "image-rotate"},
            data_version="2",
        )
        publisher(server).send([event])
        [as_grid] = grid.wait_for(1)
        [as_cloud] = cloud.wait_for(1)

    [validation] = grid.handshakes
    assert validation.method == "POST"
    assert validation.headers["aeg-event-type"] == "SubscriptionValidation"
    [validation_event] = validation.json()
    assert validation_event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert validation_event["data"]["validationCode"]
    assert validation_event["data"]["validationUrl"].startswith(server.url)
    assert [r.method for r in cloud.handshakes] == ["OPTIONS"]

    [push] = grid.notifications
    assert push.headers["content-type"] == "application/json; charset=utf-8"
    assert push.headers["aeg-data-version"] == "2"
    assert as_grid["eventType"] == SUBMITTED
    assert as_grid["id"] == str(event.id)
    assert as_grid["topic"].endswith(f"/topics/{TOPIC}")
    assert as_grid["metadataVersion"] == "1"

    assert (
        cloud.notifications[0]
        .headers["content-type"]
        .startswith("application/cloudevents-batch+json")
    )
    assert as_cloud["specversion"] == "1.0"
    assert as_cloud["type"] == SUBMITTED
    assert as_cloud["id"] == str(event.id)
    assert as_cloud["source"] == as_grid["topic"]
    assert as_cloud["subject"] == event.subject
    assert as_cloud["data"] == {"tool": "image-rotate"}


def test_a_cloudevents_topic_refuses_a_subscription_in_the_event_grid_schema():
    with pytest.raises(ConfigError, match="delivers only CloudEventSchemaV1_0"):
        make_config(subscription("grid", "http://127.0.0.1:1/", eventDeliverySchema=EVENTGRID))


@pytest.mark.parametrize("schema", [CLOUDEVENTS, EVENTGRID])
def test_an_endpoint_failing_the_handshake_stays_inactive_and_gets_nothing(run_emulator, schema):
    with Receiver(handshake=False) as refusing, Receiver() as willing:
        config = make_config(
            subscription("refusing", refusing.url, eventDeliverySchema=schema),
            subscription("willing", willing.url, eventDeliverySchema=schema),
            schema=EVENTGRID,
        )
        server = run_emulator(config)
        event = EventGridEvent(subject="/s", event_type="t", data={}, data_version="1")
        publisher(server).send([event])
        willing.wait_for(1)
        time.sleep(0.2)

    assert len(refusing.handshakes) == 3  # tried again: the endpoint may still be starting
    assert refusing.notifications == []
    status = server.status()["subscriptions"]
    assert status["refusing"]["state"] == "inactive"
    assert status["refusing"]["handshakeError"]
    assert status["refusing"]["queued"] == 0
    assert status["willing"]["active"]


def test_an_endpoint_that_passes_a_later_handshake_attempt_becomes_active(run_emulator):
    with Receiver(handshake=2) as starting:
        server = run_emulator(make_config(subscription("image", starting.url)))
        publisher(server).send([submitted()])
        starting.wait_for(1)
    assert len(starting.handshakes) == 3
    assert server.status()["subscriptions"]["image"]["handshakeError"] is None


def test_events_published_during_the_handshake_wait_for_it(run_emulator):
    with Receiver(validation_answer=lambda code: (202, b"")) as manual:
        config = make_config(
            subscription("manual", manual.url, eventDeliverySchema=EVENTGRID), schema=EVENTGRID
        )
        server = run_emulator(config, handshake_delays=(10,), wait_for_handshakes=False)
        deadline = time.monotonic() + 5
        while not manual.handshakes and time.monotonic() < deadline:
            time.sleep(0.01)
        event = EventGridEvent(subject="/s", event_type="t", data={}, data_version="1")
        publisher(server).send([event])
        assert server.status()["subscriptions"]["manual"]["state"] == "pending"
        url = manual.handshakes[0].json()[0]["data"]["validationUrl"]
        assert httpx.get(url).status_code == 200  # Event Grid's manual validation
        [delivered] = manual.wait_for(1)
    assert delivered["id"] == str(event.id)
    assert server.status()["subscriptions"]["manual"]["active"]


def test_filters_route_each_event_to_the_subscriptions_that_want_it(run_emulator):
    with Receiver() as image, Receiver() as pdf, Receiver() as rotations:
        config = make_config(
            subscription(
                "image",
                image.url,
                filter={"includedEventTypes": [SUBMITTED], "subjectBeginsWith": "/TOOLS/image/"},
            ),
            subscription("pdf", pdf.url, filter={"subjectBeginsWith": "/tools/pdf/"}),
            subscription(
                "rotations",
                rotations.url,
                filter={
                    "subjectEndsWith": "/executions/1",
                    "advancedFilters": [
                        {
                            "operatorType": "StringIn",
                            "key": "data.tool",
                            "values": ["IMAGE-ROTATE"],
                        },
                        {"operatorType": "NumberGreaterThan", "key": "data.angle", "value": 0},
                    ],
                },
            ),
        )
        server = run_emulator(config)
        events = [
            submitted("image-rotate", angle=90),
            submitted("image-rotate", angle=0),
            submitted("image-resize"),
            submitted("pdf-merge", category="pdf"),
            CloudEvent(
                source="/s", type="MagicToolbox.Execution.Completed", subject="/tools/image/x"
            ),
        ]
        publisher(server).send(events)
        image.wait_for(3)
        pdf.wait_for(1)
        rotations.wait_for(1)
        time.sleep(0.2)

    ids = [e.id for e in events]
    assert sorted(e["id"] for e in image.events()) == sorted(ids[:3])
    assert [e["id"] for e in pdf.events()] == [ids[3]]
    assert [e["id"] for e in rotations.events()] == [ids[0]]


def test_batches_hold_up_to_max_events_per_batch(run_emulator):
    with Receiver(delay=0.5) as receiver:
        config = make_config(subscription("batched", receiver.url, maxEventsPerBatch=3))
        server = run_emulator(config, max_in_flight=1)
        client = publisher(server)
        client.send([submitted()])  # occupies the one slot while the next five queue up
        client.send([submitted() for _ in range(5)])
        receiver.wait_for(6)
    sizes = [len(r.json()) for r in receiver.notifications]
    assert sizes == [1, 3, 2]


def test_a_slow_subscriber_does_not_delay_a_fast_one(run_emulator):
    with Receiver(delay=2.0) as slow, Receiver() as fast:
        config = make_config(subscription("slow", slow.url), subscription("fast", fast.url))
        server = run_emulator(config)
        client = publisher(server)
        started = time.monotonic()
        for _ in range(3):
            client.send([submitted()])
        fast.wait_for(3, timeout=1.5)
        fast_done = time.monotonic() - started
        assert slow.events() and server.status()["subscriptions"]["slow"]["delivered"] == 0
        deadline = time.monotonic() + 5
        while server.status()["subscriptions"]["slow"]["delivered"] < 3:
            assert time.monotonic() < deadline, "the slow subscriber never got its events"
            time.sleep(0.02)
    assert fast_done < 1.5
    assert len(slow.events()) == 3  # all three at once: it is slow, not serialised


def test_the_status_page_answers_over_http(run_emulator):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        status = httpx.get(f"{server.url}/emulator/status").json()
    assert status["topic"] == TOPIC
    assert status["endpoint"] == server.endpoint
    assert status["subscriptions"]["image"]["state"] == "active"


def test_concurrent_publishers_each_get_their_events_delivered(run_emulator):
    with Receiver() as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))

        def publish() -> None:
            client = publisher(server)
            for _ in range(5):
                client.send([submitted()])

        threads = [threading.Thread(target=publish) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = receiver.wait_for(20)
    assert len({e["id"] for e in events}) == 20
