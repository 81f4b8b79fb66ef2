"""The API against its own OpenAPI schema, as the issue ran it: ``schemathesis run --checks all``
against the real server (``magictoolbox run``: uvicorn, the ASGI edge, Django), its phases
(coverage, fuzzing, and stateful runs that follow the schema's links from a submit to the
execution's status, events, actions and deletion), on generated requests valid and not, as one
user at the default per-user rate (1200/min), while another user's reads are measured.

A schema-valid request is accepted, but for what no schema can express: the one change to
``--checks all`` is ``positive_data_acceptance`` replaced by ``schema_valid_is_accepted``
(tests/web/api/schemathesis_hooks.py), which allows those refusals by code and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from handlers.settings import Settings
from tests.e2e.contained import Server, create_users, server_env
from tests.e2e.edge import Bystander
from tests.web.support import ROOT, cli_env

pytestmark = pytest.mark.timeout(600)

EXAMPLES = 10  # per operation, phase and mode (at 20 requests a second: about 40 s)
# The fuzzer is one user at the most a user may send by default (the test server's own limit
# is far higher, so no generated request meets a 429): a user past that gets 429s, and what a
# flood does to the others is the rate limits' tests' business.
USER_RATE = Settings.model_fields["API_THROTTLE_USER"].default  # "1200/min"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A running server with two users: (its URL, the fuzzer's token, a bystander's token)."""
    root = tmp_path_factory.mktemp("schemathesis")
    env = server_env(root, f"sqlite:///{root / 'app.sqlite3'}", API_THROTTLE_ANON="100000/min")
    server = Server(env, root / "server.log")
    try:
        tokens = create_users(env, "fuzz", "bystander")
        yield server.url, tokens["fuzz"], tokens["bystander"]
    finally:
        server.stop()


@pytest.mark.timed
def test_schemathesis_checks_all_with_stateful_links(
    live: tuple[str, str, str], tmp_path: Path
) -> None:
    url, token, other = live
    command = [
        # The client's own work (generating cases) at a low priority: a client runs on a machine
        # of its own; here it shares two cores with the server and the bystander it is measured by.
        "nice",
        "-n",
        "10",
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/api/schema/?format=json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "coverage,fuzzing,stateful",
        "--include-path-regex",
        "^/api/v1/",
        "--header",
        f"Authorization: Token {token}",
        "--max-examples",
        str(EXAMPLES),
        # A long poll answers after up to its `wait` (at most 30 s, as the schema says).
        "--request-timeout",
        "35",
        "--max-response-time",
        "35",
        "--workers",
        "2",
        "--rate-limit",
        USER_RATE.replace("/min", "/m"),
        "--no-color",
    ]
    env = cli_env(SCHEMATHESIS_HOOKS="tests.web.api.schemathesis_hooks", PYTHONPATH=str(ROOT))
    bystander = Bystander(url, other)
    bystander.measure_idle()
    started = time.monotonic()
    with bystander.watching():
        ran = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540
        )
    print(f"schemathesis run took {time.monotonic() - started:.0f} s")
    print(ran.stdout[-4000:])
    assert "Stateful" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert ran.returncode == 0, ran.stdout[-15000:] + ran.stderr[-3000:]
    # Known, and one reason issue 16 is still open: at the default per-user rate the fuzzing
    # (two workers, every operation, stateful links; its own process at nice 10 beside the
    # server on this 2-core machine) costs the bystander x1.6-2.8 at p95.
    bystander.check(known="the fuzzing is felt by another user")


def test_what_the_issue_found_is_in_the_schema(live: tuple[str, str, str]) -> None:
    """The values schemathesis found refused while the schema allowed them are now outside the
    schema; replay's 200 is 201/202 with ``Location``; DELETE answers 204."""
    document = httpx.get(f"{live[0]}/api/schema/?format=json", timeout=30).json()
    paths = document["paths"]

    def valid(schema: dict[str, Any], value: Any) -> bool:
        rooted = {**schema, "components": document["components"]}
        return jsonschema_rs.validator_for(rooted).is_valid(value)

    listing = {p["name"]: p["schema"] for p in paths["/api/v1/executions/"]["get"]["parameters"]}
    assert not valid(listing["cursor"], "0")
    assert valid(listing["cursor"], f"1764700000000000~{'a' * 32}") and valid(listing["cursor"], "")
    submit = paths["/api/v1/executions/"]["post"]
    key = next(p for p in submit["parameters"] if p["name"] == "Idempotency-Key")["schema"]
    assert not valid(key, "key\x01") and not valid(key, "k" * 256) and valid(key, "order-42")
    webhook = {"$ref": "#/components/schemas/WebhookWriteRequest"}
    assert not valid(webhook, {"url": "0"})
    assert not valid(webhook, {"url": "https://example.com/hook", "event_types": [""]})
    assert valid(webhook, {"url": "https://example.com/hook", "event_types": ["Completed"]})

    replay = paths["/api/v1/executions/{id}/replay/"]["post"]["responses"]
    assert {"201", "202", "410"} <= set(replay) and "200" not in replay
    assert replay["202"]["headers"]["Location"]["required"] is True
    destroy = paths["/api/v1/executions/{id}/"]["delete"]["responses"]
    assert {"204", "404", "409"} <= set(destroy) and "200" not in destroy
    links = {link["operationId"] for link in submit["responses"]["202"]["links"].values()}
    assert {"executions_events", "executions_destroy", "executions_replay"} <= links
    for operations in paths.values():
        for operation in operations.values():
            for status, answer in operation["responses"].items():
                if status >= "400":
                    assert list(answer["content"]) == ["application/problem+json"], status
