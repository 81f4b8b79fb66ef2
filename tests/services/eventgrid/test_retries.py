"""Retries and dead letters with Event Grid's semantics, on a schedule compressed for tests."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent
from azure.storage.blob import BlobServiceClient

from services.eventgrid.protocol import EVENTGRID, RETRY_SCHEDULE, outcome, retry_delay
from tests.services.eventgrid.receiver import Receiver
from tests.services.eventgrid.support import TOPIC, make_config, publisher, subscription

BLOB_NAME = re.compile(
    rf"^{TOPIC}/(?P<sub>[\w-]+)/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/[0-9a-f-]{{36}}\.json$"
)


def event() -> CloudEvent:
    return CloudEvent(
        source="/magictoolbox/local", type="MagicToolbox.Execution.Submitted", data={}
    )


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.01)


def folder_letters(root: Path) -> dict[str, list[dict]]:
    """Dead-letter files under ``root``, by blob name (relative to the container folder)."""
    container = root / "deadletters"
    return {
        path.relative_to(container).as_posix(): orjson.loads(path.read_bytes())
        for path in sorted(container.rglob("*.json"))
    }


def test_the_retry_schedule_is_event_grids_scaled_and_capped():
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [10, 30, 60, 300]
    assert retry_delay(10) == retry_delay(25) == 12 * 3600 == RETRY_SCHEDULE[-1]
    assert retry_delay(2, 0.001) == pytest.approx(0.03)
    assert [outcome(s) for s in (500, 404, 503, 408, 429, 400)] == [
        "InternalServerError",
        "NotFound",
        "ServiceUnavailable",
        "TimedOut",
        "TooManyRequests",
        "BadRequest",
    ]


def test_a_subscriber_failing_twice_gets_the_event_a_third_time(run_emulator):
    with Receiver(statuses=[500, 503]) as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        publisher(server).send([event()])
        wait_until(lambda: server.status()["subscriptions"]["image"]["delivered"] == 1)
    pushes = receiver.notifications
    assert [p.headers["aeg-delivery-count"] for p in pushes] == ["0", "1", "2"]
    assert len({p.json()[0]["id"] for p in pushes}) == 1
    status = server.status()["subscriptions"]["image"]
    assert (status["retried"], status["deadLettered"], status["queued"]) == (2, 0, 0)


def test_retries_follow_the_scaled_schedule(run_emulator):
    with Receiver(statuses=[500, 500]) as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)), retry_scale=0.01)
        publisher(server).send([event()])
        wait_until(lambda: len(receiver.notifications) == 3)
    first, second, third = (p.at for p in receiver.notifications)
    assert second - first >= 0.1  # 10 s x 0.01
    assert third - second >= 0.3  # 30 s x 0.01


def test_a_subscriber_always_failing_is_dead_lettered_to_azurite(run_emulator, azurite):
    with Receiver(default=500) as receiver:
        config = make_config(
            subscription(
                "always-500",
                receiver.url,
                retryPolicy={"maxDeliveryAttempts": 3},
                deadLetter=True,
            ),
            dead_letter={"storage": azurite, "container": "emulator-deadletters"},
        )
        server = run_emulator(config)
        published = event()
        publisher(server).send([published])
        wait_until(lambda: server.status()["subscriptions"]["always-500"]["deadLettered"] == 1)

    assert len(receiver.notifications) == 3
    container = BlobServiceClient.from_connection_string(azurite).get_container_client(
        "emulator-deadletters"
    )
    [name] = [b.name for b in container.list_blobs(name_starts_with=f"{TOPIC}/always-500/")]
    assert BLOB_NAME.match(name)
    [letter] = orjson.loads(container.download_blob(name).readall())
    assert letter["id"] == published.id
    assert letter["type"] == "MagicToolbox.Execution.Submitted"
    # A CloudEvent's attributes are lower case, and Event Grid writes these so.
    assert letter["deadletterreason"] == "MaxDeliveryAttemptsExceeded"
    assert letter["deliveryattempts"] == 3
    assert letter["lastdeliveryoutcome"] == "InternalServerError"
    assert letter["lasthttpstatuscode"] == 500
    assert letter["publishtime"].endswith("Z") and letter["lastdeliveryattempttime"]


def test_a_400_is_dead_lettered_at_once_without_retries(run_emulator, tmp_path):
    with Receiver(default=400) as receiver:
        config = make_config(
            subscription("grid", receiver.url, eventDeliverySchema=EVENTGRID, deadLetter=True),
            schema=EVENTGRID,
            dead_letter={"storage": str(tmp_path), "container": "deadletters"},
        )
        server = run_emulator(config)
        published = EventGridEvent(subject="/s", event_type="t", data={"n": 1}, data_version="1")
        publisher(server).send([published])
        wait_until(lambda: server.status()["subscriptions"]["grid"]["deadLettered"] == 1)
        time.sleep(0.1)

    assert len(receiver.notifications) == 1
    [(name, [letter])] = folder_letters(tmp_path).items()
    assert BLOB_NAME.match(name) and name.startswith(f"{TOPIC}/grid/")
    assert letter["id"] == str(published.id)
    assert letter["eventType"] == "t" and letter["data"] == {"n": 1}
    assert letter["deadLetterReason"] == "UndeliverableDueToHttpBadRequest"
    assert letter["deliveryAttempts"] == 1
    assert letter["lastDeliveryOutcome"] == "BadRequest"
    assert letter["lastHttpStatusCode"] == 400
    assert server.status()["subscriptions"]["grid"]["retried"] == 0


@pytest.mark.parametrize("status", [401, 403, 413])
def test_other_final_answers_are_not_retried_either(run_emulator, tmp_path, status):
    with Receiver(default=status) as receiver:
        config = make_config(
            subscription("final", receiver.url, deadLetter=True),
            dead_letter={"storage": str(tmp_path)},
        )
        server = run_emulator(config)
        publisher(server).send([event()])
        wait_until(lambda: server.status()["subscriptions"]["final"]["deadLettered"] == 1)
    assert len(receiver.notifications) == 1
    [[letter]] = folder_letters(tmp_path).values()
    assert letter["deadletterreason"] == f"UndeliverableDueToHttp{outcome(status)}"


def test_an_event_past_its_time_to_live_is_dead_lettered(run_emulator, tmp_path):
    with Receiver(default=503) as receiver:
        config = make_config(
            subscription(
                "ttl",
                receiver.url,
                retryPolicy={"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 0.01},
                deadLetter=True,
            ),
            dead_letter={"storage": str(tmp_path)},
        )
        # 10 s, 30 s, 60 s x 0.01: attempts at 0, 0.1 and 0.4 s; the TTL (0.6 s) ends before
        # the fourth (1.0 s) would start, well before maxDeliveryAttempts.
        server = run_emulator(config, retry_scale=0.01)
        publisher(server).send([event()])
        wait_until(lambda: server.status()["subscriptions"]["ttl"]["deadLettered"] == 1)
    [[letter]] = folder_letters(tmp_path).values()
    assert letter["deadletterreason"] == "TimeToLiveExceeded"
    assert letter["deliveryattempts"] == len(receiver.notifications)
    assert 2 <= letter["deliveryattempts"] <= 3  # 3 unless this machine is very busy
    assert letter["lastdeliveryoutcome"] == "ServiceUnavailable"


def test_timeouts_and_lost_connections_are_retried(run_emulator, tmp_path):
    policy = {"maxDeliveryAttempts": 2}
    with Receiver(delay=1.0) as hanging, Receiver() as leaving:
        config = make_config(
            subscription("hanging", hanging.url, retryPolicy=policy, deadLetter=True),
            subscription("leaving", leaving.url, retryPolicy=policy, deadLetter=True),
            dead_letter={"storage": str(tmp_path)},
        )
        server = run_emulator(config, delivery_timeout=0.3)
        leaving.__exit__(None, None, None)  # it passed its handshake, then went away
        publisher(server).send([event()])
        subscriptions = server.status
        wait_until(
            lambda: all(s["deadLettered"] == 1 for s in subscriptions()["subscriptions"].values())
        )
    letters = {name.split("/")[1]: letter for name, [letter] in folder_letters(tmp_path).items()}
    assert len(hanging.notifications) == 2
    assert letters["hanging"]["deadletterreason"] == "MaxDeliveryAttemptsExceeded"
    assert letters["hanging"]["lastdeliveryoutcome"] == "TimedOut"
    assert letters["hanging"]["lasthttpstatuscode"] is None
    assert letters["leaving"]["deliveryattempts"] == 2
    assert letters["leaving"]["lastdeliveryoutcome"] == "GenericError"


def test_without_a_dead_letter_destination_a_failed_event_is_dropped(run_emulator):
    with Receiver(default=400) as receiver:
        server = run_emulator(make_config(subscription("image", receiver.url)))
        publisher(server).send([event()])
        wait_until(lambda: server.status()["subscriptions"]["image"]["dropped"] == 1)
    status = server.status()["subscriptions"]["image"]
    assert (status["deadLettered"], status["queued"]) == (0, 0)
