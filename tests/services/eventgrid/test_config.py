"""The emulator's config file: ARM's names, environment substitution, what Event Grid refuses;
and the SAS tokens of azure-eventgrid's generate_sas, checked as Event Grid checks them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from azure.eventgrid import generate_sas

from services.eventgrid.protocol import CLOUDEVENTS, EVENTGRID
from services.eventgrid.sas import sas_problem
from services.eventgrid.subscriptions import ConfigError, load_config, parse_config
from tests.services.eventgrid.support import KEY

ENDPOINT = "http://127.0.0.1:6500/api/events"


def doc(*subscriptions: dict, **topic: str) -> dict:
    return {
        "topic": {"name": "magictoolbox", "key": "k", **topic},
        "deadLetter": {"storage": "/tmp/letters", "container": "deadletters"},
        "subscriptions": list(subscriptions),
    }


def test_the_issue_example_loads_with_its_values_from_the_environment(tmp_path):
    path = tmp_path / "eventgrid.json"
    example = doc(
        {
            "name": "image",
            "endpoint": "http://127.0.0.1:${FUNCTIONS_PORT}/runtime/webhooks/EventGrid?functionName=image",
            "eventDeliverySchema": "CloudEventSchemaV1_0",
            "filter": {
                "includedEventTypes": ["MagicToolbox.Execution.Submitted"],
                "subjectBeginsWith": "/tools/image/",
                "subjectEndsWith": "",
                "advancedFilters": [
                    {"operatorType": "StringIn", "key": "data.tool", "values": ["image-rotate"]}
                ],
            },
            "retryPolicy": {"maxDeliveryAttempts": 5, "eventTimeToLiveInMinutes": 0.5},
            "deliveryAttributeMappings": [
                {
                    "name": "X-MagicToolbox-Key",
                    "type": "Static",
                    "properties": {"value": "${RECEIVER_KEY}", "isSecret": True},
                }
            ],
            "maxEventsPerBatch": 1,
            "deadLetter": True,
        },
        key="${TOPIC_KEY:-fallback}",
    )
    path.write_text(json.dumps(example))
    config = load_config(path, {"FUNCTIONS_PORT": "7071", "RECEIVER_KEY": "s3cret"})

    assert config.topic.key == "fallback"
    assert config.topic.input_schema == CLOUDEVENTS
    [image] = config.subscriptions
    assert image.endpoint.startswith("http://127.0.0.1:7071/runtime/webhooks/EventGrid")
    assert image.attributes[0].value == "s3cret"
    assert image.max_delivery_attempts == 5
    assert image.event_ttl_minutes == 0.5
    assert image.dead_letter is not None and image.dead_letter.storage == "/tmp/letters"
    assert image.filter.advanced[0].values == ("image-rotate",)


def test_defaults_follow_event_grid():
    config = parse_config(doc({"name": "plain", "endpoint": "http://127.0.0.1:1/"}), {})
    [plain] = config.subscriptions
    assert (plain.max_delivery_attempts, plain.event_ttl_minutes) == (30, 1440)
    assert plain.max_events_per_batch == 1
    assert plain.delivery_schema == CLOUDEVENTS
    assert plain.dead_letter is None
    grid = parse_config(
        doc({"name": "plain", "endpoint": "http://127.0.0.1:1/"}, inputSchema=EVENTGRID), {}
    )
    assert grid.subscriptions[0].delivery_schema == EVENTGRID


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": "x"}, "3 to 64"),
        ({"endpoint": "ftp://h/"}, "an http(s) URL"),
        ({"retryPolicy": {"maxDeliveryAttempts": 31}}, "from 1 to 30"),
        ({"retryPolicy": {"eventTimeToLiveInMinutes": 0}}, "above 0"),
        ({"maxEventsPerBatch": 0}, "maxEventsPerBatch"),
        ({"eventDeliverySchema": "Custom"}, "one of"),
        ({"endpoint": "${NOT_SET}"}, "NOT_SET"),
        (
            {"deliveryAttributeMappings": [{"name": "aeg-x", "properties": {"value": "v"}}]},
            "Event Grid's own",
        ),
        (
            {"filter": {"advancedFilters": [{"operatorType": "Nope", "key": "k"}]}},
            "operatorType",
        ),
    ],
)
def test_what_event_grid_would_refuse_is_refused_with_the_reason(settings, message):
    subscription = {"name": "image", "endpoint": "http://h/", **settings}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(doc(subscription), {})


def test_two_subscriptions_may_not_share_a_name():
    same = {"name": "image", "endpoint": "http://h/"}
    with pytest.raises(ConfigError, match="two subscriptions"):
        parse_config(doc(same, {**same, "name": "IMAGE"}), {})


def test_dead_lettering_needs_a_destination():
    config = doc({"name": "image", "endpoint": "http://h/", "deadLetter": True})
    del config["deadLetter"]
    with pytest.raises(ConfigError, match="no deadLetter storage"):
        parse_config(config, {})


def test_a_token_from_generate_sas_is_valid_until_it_expires():
    expires = datetime.now(UTC) + timedelta(minutes=10)
    token = generate_sas(ENDPOINT, KEY, expires)
    assert sas_problem(token, KEY) is None
    assert sas_problem(token, KEY, now=expires + timedelta(seconds=1)) == "the token has expired"


def test_a_token_signed_with_a_naive_utc_expiry_is_understood():
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=10)
    assert sas_problem(generate_sas(ENDPOINT, KEY, naive), KEY) is None
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
    assert sas_problem(generate_sas(ENDPOINT, KEY, past), KEY) == "the token has expired"


def test_a_forged_or_foreign_token_is_refused():
    token = generate_sas(ENDPOINT, KEY, datetime.now(UTC) + timedelta(minutes=10))
    later = generate_sas(ENDPOINT, KEY, datetime.now(UTC) + timedelta(days=10))
    spliced = token.rsplit("&s=", 1)[0] + "&s=" + later.rsplit("&s=", 1)[1]
    assert "signature" in sas_problem(spliced, KEY)
    other = generate_sas("http://127.0.0.1:6500/api/other", KEY, datetime.now(UTC) + timedelta(1))
    assert sas_problem(other, KEY) == "the token is for another resource"
    assert "signature" in sas_problem("r=a&e=b&s=c", KEY)
    assert sas_problem("garbage", KEY) == "the token has no signature (s=)"
