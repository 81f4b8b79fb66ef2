"""``magictoolbox run`` (what ``make run`` calls): the whole service in one process tree.

It migrates, creates the demo account on a first start of the embedded default, prints the URL
and serves the ASGI app with uvicorn. With ``FUNCTIONS_IN_PROCESS`` (on for the local
deployment) the same process runs the projector, the local Functions host and its timers (the
sweeper and retention), so one command gives a working toolbox. Ctrl-C stops the server, then
the background work, cleanly (uvicorn's graceful shutdown and the ASGI lifespan).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import uvicorn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

DEMO_USERNAME = "demo"


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
                timeout_graceful_shutdown=5,  # open SSE streams would otherwise hold it up
            )
        self.stdout.write("MagicToolbox stopped.")
