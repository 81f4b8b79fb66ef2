"""``magictoolbox eventgrid-emulator``: a local Event Grid topic pushing to its subscriptions.

magictoolbox eventgrid-emulator --config eventgrid.json [--host 127.0.0.1] [--port 6500]
                                [--retry-scale 1.0] [--key KEY] [--delivery-timeout 30]

The azure-eventgrid SDK publishes to ``http://HOST:PORT/api/events`` with the topic's key (or a
SAS token made from it); ``services.eventgrid.subscriptions`` describes the file. It runs until
SIGTERM or Ctrl-C and needs no database. The module's name has a hyphen so that the command has
one: Django imports command modules by name, which a hyphen does not trouble.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from services.eventgrid.emulator import serve
from services.eventgrid.subscriptions import ConfigError, load_config


class Command(BaseCommand):
    help = "Run a local Azure Event Grid topic that pushes to the subscriptions of a config file."
    requires_system_checks = ()  # no database, no app checks: just the emulator

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", required=True, metavar="FILE", help="subscriptions (JSON)")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=6500)
        parser.add_argument(
            "--retry-scale",
            type=float,
            default=1.0,
            help="multiplies Event Grid's retry schedule (10 s, 30 s, 1 min, …); 0.001 in tests",
        )
        parser.add_argument("--key", help="the topic's access key (overrides the file's)")
        parser.add_argument(
            "--delivery-timeout", type=float, default=30.0, help="seconds per push (default 30)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["retry_scale"] < 0 or options["delivery_timeout"] <= 0:
            raise CommandError("--retry-scale must be >= 0 and --delivery-timeout > 0")
        try:
            config = load_config(options["config"])
        except ConfigError as exc:
            raise CommandError(f"{options['config']}: {exc}") from None
        if options["key"]:
            config = config.with_key(options["key"])
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the emulator logs each outcome
        logging.getLogger("azure").setLevel(logging.WARNING)  # not every dead-letter request
        count = len(config.subscriptions)

        def listening(endpoint: str) -> None:
            self.stdout.write(f"Event Grid emulator: {endpoint} ({count} subscriptions)")
            self.stdout.flush()

        try:
            serve(
                config,
                options["host"],
                options["port"],
                options["retry_scale"],
                delivery_timeout=options["delivery_timeout"],
                on_listening=listening,
            )
        except OSError as exc:
            where = f"{options['host']}:{options['port']}"
            raise CommandError(f"cannot listen on {where}: {exc}") from None
        self.stdout.write("Event Grid emulator stopped.")
