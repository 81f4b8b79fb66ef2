"""Live updates: what the projector commits reaches the owner's SSE channels and nobody else's."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from django.contrib.auth.models import AnonymousUser, User

from projections.projector import Projector
from tests.web.deployment import Deployment
from tests.web.support import embedded_env, run_cli
from tests.web.test_run_command import Server, sign_in
from web import live
from web.parts import parts


def run(owner: User, text: str = "hi") -> str:
    """A base64-encode execution of ``owner``'s, run to completion as its request would."""
    # Submitted and run in two steps, as a request and a Functions host would.
    submission = parts().executions.submit(
        str(owner.pk), "base64-encode", {"text": text}, run_sync=False
    )
    execution_id = submission.execution.id
    parts().runner().run(execution_id)
    return str(execution_id)


def users() -> tuple[User, User]:
    return (
        User.objects.create_user("alice", password="pw-alice-123"),
        User.objects.create_user("bob", password="pw-bob-123"),
    )


def test_a_user_may_read_only_their_own_channels(deployment: Deployment) -> None:
    alice, bob = users()
    hers = run(alice)
    manager = live.ChannelManager()
    assert manager.can_read_channel(alice, f"user-{alice.pk}")
    assert manager.can_read_channel(alice, f"execution-{hers}")
    assert not manager.can_read_channel(bob, f"user-{alice.pk}")
    assert not manager.can_read_channel(bob, f"execution-{hers}")
    assert not manager.can_read_channel(None, f"user-{alice.pk}")
    assert not manager.can_read_channel(AnonymousUser(), f"execution-{hers}")
    assert not manager.can_read_channel(alice, f"execution-{uuid4()}")
    assert not manager.can_read_channel(alice, "execution-not-a-uuid")
    assert not manager.can_read_channel(alice, "everything")


Sent = list[tuple[str, str, dict[str, Any]]]


@pytest.fixture
def sent(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Sent:
    """What ``live.publish`` sends: (channel, event type, data), instead of sending it."""
    sent: Sent = []
    monkeypatch.setattr(live, "send_event", lambda c, t, d: sent.append((c, t, d)))
    return sent


def test_each_change_is_sent_to_its_owner_and_its_execution_only(
    deployment: Deployment, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = users()
    monkeypatch.setattr(live, "_listening", lambda: None)  # every channel heard, as with Redis
    hers, his = run(alice, "a"), run(bob, "b")
    project(deployment)
    statuses = {(c, d["id"]) for c, t, d in sent if t == "status"}
    assert statuses == {
        (f"user-{alice.pk}", hers),
        (f"execution-{hers}", hers),
        (f"user-{bob.pk}", his),
        (f"execution-{his}", his),
    }
    for channel, kind, data in sent:
        if kind == "event":  # each event of the timeline, on its own execution's channel only
            assert channel == f"execution-{data['subject'].rsplit('/', 1)[-1]}"
    last = {d["id"]: d for c, t, d in sent if t == "status"}
    assert last[hers]["status"] == "completed" and last[hers]["result"] == "YQ=="


def project(deployment: Deployment) -> None:
    projector = Projector(deployment.store, parts().read_models_url, on_applied=live.publish)
    try:
        while projector.run_once():
            pass
    finally:
        projector.close()


def test_nothing_is_built_for_channels_nobody_listens_to(
    deployment: Deployment, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = users()
    listening = {f"user-{alice.pk}"}
    monkeypatch.setattr(live, "_listening", lambda: listening)
    hers, _ = run(alice, "a"), run(bob, "b")
    project(deployment)
    assert {(c, t) for c, t, d in sent} == {(f"user-{alice.pk}", "status")}
    assert {d["id"] for c, t, d in sent} == {hers}


def read_sse(client: httpx.Client, path: str, into: list[dict[str, Any]], stop: threading.Event):
    """Collect a stream's events (type and data) until ``stop`` is set or the stream ends."""
    try:
        with client.stream("GET", path, timeout=httpx.Timeout(5, read=None)) as stream:
            kind = None
            for line in stream.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("status", "event", "stream-error"):
                    into.append({"event": kind, "data": json.loads(line.split(":", 1)[1])})
    except httpx.HTTPError:
        return  # the server stopped at the end of the test


@pytest.mark.timeout(120)
def test_over_http_a_browser_receives_its_own_updates_and_not_anothers(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    server = Server(env)
    try:
        for name in ("alice", "bob"):
            made = run_cli("shell", "-c", _create_user(name), **env)
            assert made.returncode == 0, made.stderr
        alice = sign_in(server.url, "alice", "pw-alice-123")
        bob = sign_in(server.url, "bob", "pw-bob-123")
        seen_by = {"alice": [], "bob": []}
        stop = threading.Event()
        readers = [
            threading.Thread(target=read_sse, args=(c, "/live/me/", seen_by[n], stop), daemon=True)
            for n, c in (("alice", alice), ("bob", bob))
        ]
        for reader in readers:
            reader.start()
        time.sleep(1.0)  # both streams open
        ran = alice.post(
            "/api/v1/executions/",
            json={"tool": "base64-encode", "params": {"text": "live"}},
            headers={"X-CSRFToken": alice.cookies["csrftoken"]},
        ).json()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            e["event"] == "status" and e["data"]["status"] == "completed" for e in seen_by["alice"]
        ):
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        assert [e["data"]["id"] for e in seen_by["alice"] if e["event"] == "status"][-1] == ran[
            "id"
        ]
        assert [e["data"]["status"] for e in seen_by["alice"]][-1] == "completed"
        assert not [e for e in seen_by["bob"] if e["event"] == "status"], seen_by["bob"]
        other = bob.get(f"/live/executions/{ran['id']}/").text
        assert "forbidden" in other and "live" not in other
    finally:
        server.interrupt()


def _create_user(name: str) -> str:
    return (
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('{name}', password='pw-{name}-123')"
    )
