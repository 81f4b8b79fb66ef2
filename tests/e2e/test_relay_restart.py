"""A relay killed in the middle of publishing loses nothing: restarted, it publishes from its
checkpoint, and every event reaches Event Grid's subscribers (some twice: at least once)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from events.catalog import Submitted
from events.checkpoints import StoredCheckpoint
from events.envelope import execution_stream, execution_subject, new_event
from events.opening import open_store
from tests.conftest import require_postgres
from tests.e2e.azure_mode import TOPIC_KEY, postgres_schema, running_emulator, start
from tests.services.eventgrid.receiver import Receiver
from tests.web.support import cli_command, cli_env, run_cli

pytestmark = [pytest.mark.timeout(180), pytest.mark.postgres]

EXECUTIONS = 1500
BIG = "x" * 6000  # ~6 KB an event: about 9 MB in all, so the relay needs many 1 MB batches


def test_a_relay_killed_mid_batch_delivers_every_event_after_a_restart(tmp_path: Path) -> None:
    require_postgres()
    with postgres_schema() as database_url, Receiver() as subscriber:
        store = open_store(database_url)
        store.setup()
        for _ in range(EXECUTIONS):
            execution_id = uuid.uuid4()
            submitted = Submitted(
                execution_id=execution_id,
                tool="json-format",
                category="data",
                tool_version="1",
                mode="sync",
                params={"text": BIG},
                owner="7",
            )
            subject = execution_subject("data", "json-format", execution_id)
            store.append(execution_stream(execution_id), [new_event(submitted, subject=subject)])
        ids = {str(e.id) for e in store.read_all(0, limit=EXECUTIONS + 10)}
        head = store.head_position()

        config = {
            "topic": {"name": "relay-restart", "key": TOPIC_KEY},
            "subscriptions": [
                {
                    "name": "audit",
                    "endpoint": subscriber.url,
                    "eventDeliverySchema": "CloudEventSchemaV1_0",
                    "maxEventsPerBatch": 100,
                }
            ],
        }
        env = cli_env(
            DATABASE_URL=database_url,
            SECRET_KEY="relay-test",
            MAGICTOOLBOX_DEPLOYMENT="relay-test",
            EVENTGRID_TOPIC_KEY=TOPIC_KEY,
        )
        try:
            with running_emulator(tmp_path, env, config) as endpoint:
                env["EVENTGRID_TOPIC_ENDPOINT"] = endpoint
                checkpoint = StoredCheckpoint(database_url, "relay")
                checkpoint.setup()
                relay = start("relay", cli_command("relay"), env, tmp_path / "relay.log")
                try:
                    deadline = time.monotonic() + 60
                    while checkpoint.load() == 0 and time.monotonic() < deadline:
                        time.sleep(0.005)
                    relay.stop(kill=True)  # SIGKILL: no chance to finish the batch or save
                finally:
                    relay.stop(kill=True)
                killed_at = checkpoint.load()
                assert 0 < killed_at < head, (
                    f"the relay was not killed mid-way ({killed_at}/{head})"
                )

                rerun = run_cli("relay", "--once", timeout=120, **env)
                assert rerun.returncode == 0, rerun.stderr
                assert checkpoint.load() == head

                deadline = time.monotonic() + 60
                while not ids <= delivered(subscriber) and time.monotonic() < deadline:
                    time.sleep(0.1)
                missing = ids - delivered(subscriber)
                assert not missing, f"{len(missing)} events never arrived"
        finally:
            store.close()


def delivered(subscriber: Receiver) -> set[str]:
    return {event["id"] for event in subscriber.events()}
