"""The receiver as Event Grid meets it: handshakes, the key, deliveries in both schemas, garbage,
oversized bodies, and duplicates that must change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from services.eventgrid import protocol
from tests.web.api.test_executions_api import assert_problem
from tests.web.deployment import Deployment
from tests.web.eventgrid.conftest import BATCH, KEY, URL, dumps, fingerprint

ORIGIN = "eventgrid.azure.net"
KEYED = {"X-MagicToolbox-Key": KEY}

FOREIGN = {
    "specversion": "1.0",
    "id": "6f1c2b0e-0000-4000-8000-000000000001",
    "source": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
    "type": "Microsoft.Storage.BlobCreated",
    "subject": "/blobServices/default/containers/uploads/blobs/a.png",
    "time": "2025-01-01T00:00:00.1234567Z",
    "data": {"api": "PutBlob"},
}


def validation_event(
    code: str = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", subject: str = ""
) -> dict[str, Any]:
    """Event Grid's subscription validation, in the Event Grid schema, as Azure sends it."""
    return {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.EventGrid/topics/t",
        "subject": subject,
        "data": {
            "validationCode": code,
            "validationUrl": "https://rp-eastus2.eventgrid.azure.net/eventsubscriptions/s/validate",
        },
        "eventType": protocol.VALIDATION_EVENT_TYPE,
        "eventTime": "2025-01-01T00:00:00.9664186Z",
        "metadataVersion": "1",
        "dataVersion": "2",
    }


def deliver(client: Any, body: bytes, *, content_type: str = BATCH, path: str = URL, **headers):
    return client.post(
        path,
        data=body,
        content_type=content_type,
        headers={protocol.AEG_EVENT_TYPE: protocol.NOTIFICATION, **KEYED, **headers},
    )


def test_the_cloudevents_handshake_allows_the_origin_that_asks(client, receiver, woken) -> None:
    answer = client.options(URL, headers={protocol.REQUEST_ORIGIN: ORIGIN, **KEYED})
    assert answer.status_code == 200
    assert answer[protocol.ALLOWED_ORIGIN] == ORIGIN
    assert answer[protocol.ALLOWED_RATE] == "*"
    assert "POST" in answer["Allow"]

    refused = client.options(URL, headers={protocol.REQUEST_ORIGIN: ORIGIN})
    assert_problem(refused, 401, "unauthorized")
    assert protocol.ALLOWED_ORIGIN not in refused
    assert woken == []


def test_the_event_grid_schema_validation_answers_its_code(client, receiver, woken) -> None:
    body = dumps([validation_event("the-code")])
    headers = {protocol.AEG_EVENT_TYPE: protocol.SUBSCRIPTION_VALIDATION}
    answer = client.post(URL, body, content_type="application/json", headers={**headers, **KEYED})
    assert answer.status_code == 200
    assert answer.json() == {"validationResponse": "the-code"}

    refused = client.post(URL, body, content_type="application/json", headers=headers)
    assert_problem(refused, 401, "unauthorized")
    assert "validationResponse" not in refused.json()
    assert woken == []


def test_azures_own_validation_event_with_an_empty_subject(client, receiver) -> None:
    answer = client.post(
        URL,
        dumps([validation_event("the-code", subject="")]),
        content_type="application/json",
        headers={protocol.AEG_EVENT_TYPE: protocol.SUBSCRIPTION_VALIDATION, **KEYED},
    )
    assert answer.json() == {"validationResponse": "the-code"}


def test_a_validation_without_its_event_is_malformed(client, receiver, cloudevents) -> None:
    answer = deliver(
        client, dumps(cloudevents), **{protocol.AEG_EVENT_TYPE: protocol.SUBSCRIPTION_VALIDATION}
    )
    assert_problem(answer, 400, "malformed_events")
    no_code = validation_event()
    no_code["data"] = {}
    assert_problem(deliver(client, dumps([no_code])), 400, "malformed_events")


def test_the_key_may_come_in_the_header_or_the_query(client, receiver, cloudevents) -> None:
    assert deliver(client, dumps(cloudevents)).status_code == 200
    in_query = client.post(f"{URL}?code={KEY}", dumps(cloudevents), content_type=BATCH)
    assert in_query.status_code == 200
    handshake = client.options(f"{URL}?code={KEY}", headers={protocol.REQUEST_ORIGIN: ORIGIN})
    assert handshake[protocol.ALLOWED_ORIGIN] == ORIGIN


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (URL, {}),
        (URL, {"X-MagicToolbox-Key": "wrong"}),
        (URL, {"X-MagicToolbox-Key": KEY[:-1]}),
        (URL, {"X-MagicToolbox-Key": "ключ"}),  # not ASCII: refused, not a crash
        (f"{URL}?code=wrong", {}),
        (f"{URL}?key={KEY}", {}),
        (URL, {"Authorization": f"Bearer {KEY}"}),  # no audience configured: no tokens
    ],
)
def test_a_wrong_or_missing_key_is_refused_and_wakes_nothing(
    client, receiver: Deployment, cloudevents, woken, path: str, headers: dict[str, str]
) -> None:
    before = fingerprint(receiver.store)
    answer = client.post(path, dumps(cloudevents), content_type=BATCH, headers=headers)
    assert_problem(answer, 401, "unauthorized")
    assert answer["WWW-Authenticate"].startswith("MagicToolbox-Key")
    assert woken == []
    assert fingerprint(receiver.store) == before


def test_without_a_key_or_audience_the_receiver_refuses_everything(
    client, receiver, cloudevents, woken, configure
) -> None:
    configure(EVENTGRID_RECEIVER_KEY="")
    requests = [
        deliver(client, dumps(cloudevents)),
        client.post(f"{URL}?code=", dumps(cloudevents), content_type=BATCH),
        client.options(URL, headers={protocol.REQUEST_ORIGIN: ORIGIN, **KEYED}),
        client.post(URL, dumps([validation_event()]), content_type="application/json"),
    ]
    for answer in requests:
        assert_problem(answer, 401, "receiver_not_configured")
        assert answer["WWW-Authenticate"]
    assert woken == []


def test_a_batch_of_our_cloudevents_wakes_the_readers_once(
    client, receiver, cloudevents, woken
) -> None:
    answer = deliver(client, dumps(cloudevents))
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"received": len(cloudevents), "ours": len(cloudevents)}
    assert len(cloudevents) == 5 and woken == [1]


def test_other_events_are_accepted_and_ignored(client, receiver, cloudevents, woken) -> None:
    foreign = [FOREIGN, {**FOREIGN, "id": "another"}]
    only_foreign = deliver(client, dumps(foreign))
    assert only_foreign.json() == {"received": 2, "ours": 0}
    assert woken == []  # nothing of ours arrived: nothing to catch up on

    mixed = deliver(client, dumps([FOREIGN, *cloudevents[:2]]))
    assert mixed.json() == {"received": 3, "ours": 2}
    assert woken == [1]


def test_one_structured_cloudevent(client, receiver, cloudevents, woken) -> None:
    answer = deliver(client, dumps(cloudevents[0]), content_type=protocol.CLOUDEVENT)
    assert answer.json() == {"received": 1, "ours": 1}
    assert woken == [1]


def test_our_events_in_the_event_grid_schema(client, receiver, cloudevents, woken) -> None:
    events = [
        {
            "id": e["id"],
            "topic": e["source"],
            "subject": e["subject"],
            "eventType": e["type"],
            "eventTime": e["time"],
            "data": e["data"],
            "dataVersion": str(e["dataschemaversion"]),
        }
        for e in cloudevents
    ]
    answer = deliver(client, dumps(events), content_type="application/json")
    assert answer.json() == {"received": len(events), "ours": len(events)}
    assert woken == [1]


def test_the_same_batch_twice_leaves_the_store_alone(
    client, receiver: Deployment, cloudevents, woken
) -> None:
    before = fingerprint(receiver.store)
    first = deliver(client, dumps(cloudevents), **{protocol.AEG_DELIVERY_COUNT: "0"})
    again = deliver(client, dumps(cloudevents), **{protocol.AEG_DELIVERY_COUNT: "1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert fingerprint(receiver.store) == before
    assert [e.to_cloudevent() for e in receiver.store.read_all()] == cloudevents
    assert woken == [1, 1]  # each delivery nudges; the readers find nothing new the second time


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b"42",
        b'["a", "b"]',
        b'{"hello": "world"}',
        dumps([{k: v for k, v in FOREIGN.items() if k != "id"}]),
        dumps([{**FOREIGN, "specversion": "0.3"}]),
        dumps([{**FOREIGN, "time": "yesterday"}]),
    ],
    ids=[
        "not-json",
        "empty",
        "empty-array",
        "number",
        "strings",
        "not-an-event",
        "missing-id",
        "old-spec",
        "bad-time",
    ],
)
def test_garbage_is_malformed(client, receiver, woken, body: bytes) -> None:
    assert_problem(deliver(client, body), 400, "malformed_events")
    assert woken == []


def test_a_body_over_one_megabyte_is_too_large(client, receiver, cloudevents, woken) -> None:
    padded = [{**cloudevents[0], "data": {"pad": "x" * protocol.MAX_BATCH_BYTES}}]
    assert_problem(deliver(client, dumps(padded)), 413, "payload_too_large")
    assert woken == []
    fits = [{**cloudevents[0], "data": {"pad": "x" * (protocol.MAX_BATCH_BYTES - 2048)}}]
    assert len(dumps(fits)) <= protocol.MAX_BATCH_BYTES
    assert deliver(client, dumps(fits)).json() == {"received": 1, "ours": 1}


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head"])
def test_only_post_and_options(client, receiver, method: str) -> None:
    answer = getattr(client, method)(URL, headers=KEYED)
    assert answer.status_code == 405
    assert answer["Allow"] == "POST, OPTIONS"
    refused = getattr(client, method)(URL)
    assert refused.status_code == 401 and refused["WWW-Authenticate"]
    if method != "head":  # a HEAD answer has no body
        assert_problem(answer, 405, "method_not_allowed")
        assert_problem(refused, 401, "unauthorized")
