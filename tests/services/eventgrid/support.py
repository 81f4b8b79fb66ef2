"""What the emulator's tests share: a topic key the SDK can sign with, configs, a publisher."""

from __future__ import annotations

import base64
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridPublisherClient

from services.eventgrid.emulator import EmulatorServer
from services.eventgrid.protocol import CLOUDEVENTS
from services.eventgrid.subscriptions import EmulatorConfig, parse_config

KEY = base64.b64encode(b"emulator test key, 32 bytes long").decode()  # generate_sas needs base64
TOPIC = "magictoolbox"
FAST_HANDSHAKES = (0.05, 0.05)  # three handshake attempts in 0.1 s


def subscription(name: str, endpoint: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "endpoint": endpoint, **settings}


def make_config(
    *subscriptions: dict[str, Any],
    schema: str = CLOUDEVENTS,
    dead_letter: dict[str, str] | None = None,
) -> EmulatorConfig:
    doc: dict[str, Any] = {
        "topic": {"name": TOPIC, "key": KEY, "inputSchema": schema},
        "subscriptions": list(subscriptions),
    }
    if dead_letter is not None:
        doc["deadLetter"] = dead_letter
    return parse_config(doc, environ={})


def publisher(server: EmulatorServer, key: str = KEY) -> EventGridPublisherClient:
    return EventGridPublisherClient(server.endpoint, AzureKeyCredential(key))
