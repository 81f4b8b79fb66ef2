"""``magictoolbox run-azure`` (what ``make run-azure`` calls): Azure mode on one machine.

Each process is the command Azure would run, wired as Azure wires them on 127.0.0.1: the web
(``magictoolbox run`` with the outbox relay and the Event Grid receiver), the Functions host's
Event Grid trigger and timers (``magictoolbox functions --http``), the Event Grid emulator
subscribed from the app's bindings (and any ``--subscriptions FILE``), and Azurite unless
``BLOB_STORAGE`` names a store. The database is ``DATABASE_URL``'s. Output is prefixed with each
process's name; Ctrl-C stops them all, the web first.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from handlers.bindings import read_bindings
from handlers.eventgrid_trigger import STATUS_PATH, event_subscriptions
from handlers.function_app import app as function_app
from handlers.settings import VAR_DIR
from services.blobs.azure import azurite_connection_string
from web.core import azurite
from web.core.children import Child, ChildFailed, emulator_settled, wait_for

TOPIC_NAME = "magictoolbox-local"


def emulator_config(
    functions_url: str,
    web_url: str,
    topic_key: str,
    receiver_key: str,
    blob_storage: str,
    extra: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The topic and its subscriptions, as ``infra/`` subscribes them in Azure."""
    subscriptions, _ = read_bindings(function_app)
    retry = {"retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}}
    web = {
        "name": "web",
        "endpoint": f"{web_url}/eventgrid/events?code={receiver_key}",
        "eventDeliverySchema": "CloudEventSchemaV1_0",
        "deliveryAttributeMappings": [
            {
                "name": "X-MagicToolbox-Key",
                "type": "Static",
                "properties": {"value": receiver_key, "isSecret": True},
            }
        ],
        "maxEventsPerBatch": 50,
        "deadLetter": True,
        **retry,
    }
    return {
        "topic": {"name": TOPIC_NAME, "key": topic_key},
        "deadLetter": {"storage": blob_storage, "container": "deadletters"},
        "subscriptions": [
            *event_subscriptions(subscriptions, functions_url, deadLetter=True, **retry),
            web,
            *extra,
        ],
    }


class Command(BaseCommand):
    help = "Run Azure mode locally: web + relay, Event Grid emulator, Functions HTTP trigger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="the web's address")
        parser.add_argument(
            "--port", type=int, default=settings.MAGICTOOLBOX.RUN_PORT, help="the web's port"
        )
        parser.add_argument("--functions-port", type=int, default=7071)
        parser.add_argument("--eventgrid-port", type=int, default=6500)
        parser.add_argument(
            "--retry-scale", default="1.0", help="multiplies Event Grid's retry delays"
        )
        parser.add_argument(
            "--subscriptions", type=Path, help="a JSON list of further subscriptions"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        extra = json.loads(options["subscriptions"].read_text()) if options["subscriptions"] else []
        var = VAR_DIR
        web_url = f"http://127.0.0.1:{options['port']}"
        functions_url = f"http://127.0.0.1:{options['functions_port']}"
        eventgrid_url = f"http://127.0.0.1:{options['eventgrid_port']}"
        functions_port, eventgrid_port = (
            str(options["functions_port"]),
            str(options["eventgrid_port"]),
        )
        config = settings.MAGICTOOLBOX
        topic_key = config.EVENTGRID_TOPIC_KEY or secrets.token_urlsafe(24)
        receiver_key = config.EVENTGRID_RECEIVER_KEY or secrets.token_urlsafe(24)
        # The children inherit this environment, with what makes them Azure mode's parts.
        env = dict(os.environ)
        env["EVENTGRID_TOPIC_KEY"] = topic_key
        env["EVENTGRID_RECEIVER_KEY"] = receiver_key
        env["EVENTGRID_TOPIC_ENDPOINT"] = f"{eventgrid_url}/api/events"
        env["FUNCTIONS_IN_PROCESS"] = "false"
        env["PYTHONUNBUFFERED"] = "1"
        children: list[Child] = []
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            blob_storage = config.BLOB_STORAGE
            if "BLOB_STORAGE" not in config.model_fields_set:  # not chosen: Azurite, as on Azure
                blob_storage = env["BLOB_STORAGE"] = self._azurite(var, children)
            emulator = var / "eventgrid-local.json"
            emulator.write_text(
                json.dumps(
                    emulator_config(
                        functions_url, web_url, topic_key, receiver_key, blob_storage, extra
                    ),
                    indent=2,
                )
            )
            magictoolbox = [sys.executable, "-m", "web.manage"]
            functions = Child(
                "functions",
                [*magictoolbox, "functions", "--http", "--no-projector", "--port", functions_port],
                env,
                self.stdout,
            )
            children.append(functions)
            web = Child(
                "web",
                [*magictoolbox, "run", "--host", options["host"], "--port", str(options["port"])],
                env,
                self.stdout,
            )
            children.append(web)
            wait_for(f"{functions_url}{STATUS_PATH}", functions)
            wait_for(f"{web_url}/healthz", web)
            eventgrid = Child(
                "eventgrid",
                [
                    *magictoolbox,
                    *("eventgrid-emulator", "--config", str(emulator), "--port", eventgrid_port),
                    *("--retry-scale", options["retry_scale"]),
                ],
                env,
                self.stdout,
            )
            children.append(eventgrid)
            wait_for(f"{eventgrid_url}/emulator/status", eventgrid, ready=emulator_settled)
            self.stdout.write(
                self.style.SUCCESS(f"Azure mode is running: {web_url}/ (Ctrl-C stops it all)")
            )
            self.stdout.write(f"  Event Grid topic: {eventgrid_url}/api/events  ({emulator})")
            self.stdout.write(f"  Functions host:   {functions_url}/runtime/webhooks/EventGrid")
            self.stdout.flush()
            while not stop.is_set() and all(child.running() for child in children):
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        except ChildFailed as exc:
            raise CommandError(str(exc)) from None
        finally:
            for child in sorted(children, key=lambda c: c.name != "web"):  # the web first
                child.stop()
        self.stdout.write("Azure mode stopped.")

    def _azurite(self, var: Path, children: list[Child]) -> str:
        if not azurite.AZURITE.exists():
            raise CommandError(f"Azurite is not installed at {azurite.AZURITE}: run `make azurite`")
        port = azurite.free_port()
        (var / "azurite").mkdir(exist_ok=True)
        log = open(var / "azurite" / "azurite.log", "a")  # noqa: SIM115 (the child's lifetime)
        child = Child("azurite", azurite.command(var / "azurite", port), dict(os.environ), log)
        children.append(child)
        if not azurite.wait_listening(port, child.running):
            raise CommandError("Azurite did not start (see var/azurite/azurite.log)")
        return azurite_connection_string(port)
