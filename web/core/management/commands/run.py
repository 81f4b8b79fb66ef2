"""``magictoolbox run`` (what ``make run`` calls): the whole service in one process tree.

It migrates, creates the demo account on a first start of the embedded default, prints the URL
and serves the ASGI app with uvicorn. With ``FUNCTIONS_IN_PROCESS`` (on for the local
deployment) the same process runs the projector, the local Functions host and its timers (the
sweeper and retention), so one command gives a working toolbox. Ctrl-C stops the server, then
the background work, cleanly (uvicorn's graceful shutdown and the ASGI lifespan).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import secrets
from typing import Any
from urllib.parse import unquote_plus

import uvicorn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from web.runtime import postgres_connections

DEMO_USERNAME = "demo"
# How long an idle kept-alive connection stays open. uvicorn's 5 s default is shorter than the
# idle time of the proxies and clients that reuse connections (Azure's front ends keep theirs for
# minutes), and each close races a request sent on it: a reset for the client. An idle connection
# costs no thread here, only a socket.
KEEP_ALIVE_SECONDS = 75
# Query parameters whose value is a secret by the look of their name: Event Grid's `code`, a SAS
# `sig`, any `…key` or `…token`. A name that merely ends so (`zipcode`) is hidden too: harmless.
SECRET_PARAMETER = re.compile(r"(code|key|sig|signature|token|secret|password)$", re.IGNORECASE)
REDACTED = "[redacted]"


def redact_query(target: str) -> str:
    """A request target (path and query) with every secret-looking parameter's value replaced;
    names are compared decoded, as Django reads them (``%63ode`` is ``code``)."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        if equals and SECRET_PARAMETER.search(unquote_plus(name).strip()):
            pair = f"{name}={REDACTED}"
        pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactSecrets(logging.Filter):
    """Keeps secrets out of uvicorn's lines: its access log (and its WebSocket lines) show the
    request target with its query, which may carry a key (``/eventgrid/events?code=…``). Headers,
    ``Authorization`` among them, are never in its lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        record.msg = _redacted(record.msg)
        return True


def _redacted(value: object) -> object:
    return redact_query(value) if isinstance(value, str) and "?" in value else value


def log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with ``RedactSecrets`` on both its handlers."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": RedactSecrets}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config


def create_demo_account() -> tuple[str, str] | None:
    """A ``demo`` user with a fresh password when there are no users at all; else None."""
    users = get_user_model()
    if users.objects.exists():
        return None
    password = secrets.token_urlsafe(12)
    users.objects.create_user(DEMO_USERNAME, password=password)
    return DEMO_USERNAME, password


class Command(BaseCommand):
    help = "Migrate, then serve the UI, the API and the background work on one address."

    def add_arguments(self, parser: CommandParser) -> None:
        config = settings.MAGICTOOLBOX
        parser.add_argument("--host", default=config.RUN_HOST, help="default: RUN_HOST")
        parser.add_argument("--port", type=int, default=config.RUN_PORT, help="default: RUN_PORT")
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        host, port = options["host"], options["port"]
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{port}/"
        demo = create_demo_account() if settings.MAGICTOOLBOX.demo_account else None
        self.stdout.write(self.style.SUCCESS(f"MagicToolbox is starting on {url}"))
        self.stdout.write(f"  API: {url}api/v1/   docs: {url}api/docs/")
        if demo is not None:
            self.stdout.write(
                self.style.WARNING(
                    f"  A local demo account was created: user {demo[0]!r}, "
                    f"password {demo[1]!r} (shown once; `magictoolbox changepassword demo`)"
                )
            )
        bound = postgres_connections(settings.MAGICTOOLBOX)
        if bound is not None:
            self.stdout.write(f"  PostgreSQL connections: at most {bound[0]} ({bound[1]})")
        self.stdout.write("  Press Ctrl-C to stop.")
        self.stdout.flush()
        # uvicorn re-raises the Ctrl-C once it has shut down; it is how a user stops us.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(
                "web.asgi:application",
                host=host,
                port=port,
                lifespan="on",
                log_level="info",
                log_config=log_config(),  # no secret from a query string in the log
                timeout_graceful_shutdown=5,  # open SSE streams would otherwise hold it up
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
                # uvicorn would take the client's address from X-Forwarded-For (from a local
                # peer by default): Django reads the header itself, and only as far as
                # TRUSTED_PROXIES allows (web.api.throttling.client_address).
                proxy_headers=False,
            )
        self.stdout.write("MagicToolbox stopped.")
