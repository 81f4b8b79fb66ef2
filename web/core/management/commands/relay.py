"""``magictoolbox relay``: publish the event store to the Event Grid topic; or show its lag.

magictoolbox relay            publish every event after the checkpoint, then as events commit
magictoolbox relay --once     publish what is pending and exit (what the timer Function does)
magictoolbox relay status     checkpoint, feed head, lag, last publish error; dead letters

The web process runs the relay itself in Azure mode (``RELAY_IN_PROCESS``); this command runs it
on its own, e.g. beside a web process that does not.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events import checkpoints
from events.connections import redacted
from events.database import Database
from services.eventgrid import relay_deadletters
from services.eventgrid.relay import RELAY_CHECKPOINT, relay_to
from web.core.cli import add_store_argument, checkpoint_lines, opened_store
from web.parts import parts


class Command(BaseCommand):
    help = "Publish every stored event to the Event Grid topic (at least once), or show its lag."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", default="run", choices=["run", "status"])
        parser.add_argument("--once", action="store_true", help="publish what is pending, exit")
        parser.add_argument(
            "--endpoint",
            default=None,
            help="topic endpoint; default: EVENTGRID_TOPIC_ENDPOINT",
        )
        add_store_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        with opened_store(options["store"]) as store:
            if options["action"] == "status":
                self._status(store.head_position())
                return
            config = parts().settings
            endpoint = options["endpoint"] or config.EVENTGRID_TOPIC_ENDPOINT
            if not endpoint:
                raise CommandError("no Event Grid topic: set EVENTGRID_TOPIC_ENDPOINT")
            relay = relay_to(store, config.DATABASE_URL, endpoint, config.EVENTGRID_TOPIC_KEY)
            if options["once"]:
                sent = relay.run_once()
                self.stdout.write(f"published {sent} events; checkpoint {relay.status.checkpoint}")
                return
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
            self.stdout.write(f"relaying to {redacted(endpoint)}; Ctrl-C stops")
            self.stdout.flush()
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            relay.run(stop)
            self.stdout.write(f"stopped at checkpoint {relay.status.checkpoint}")

    def _status(self, head: int) -> None:
        with Database(parts().read_models_url) as db:
            checkpoints.create_table(db, [])
            stored = checkpoints.read_all(db).get(RELAY_CHECKPOINT)
            relay_deadletters.create_table(db)
            dead = relay_deadletters.count(db)
            latest = relay_deadletters.latest(db, 5)
        row = (RELAY_CHECKPOINT, 0, head, None, None)
        if stored is not None:
            row = (RELAY_CHECKPOINT, stored.position, head, stored.last_error, stored.failed_at)
        for line in checkpoint_lines([row]):
            self.stdout.write(line)
        # Events Event Grid will never take (too large even alone): passed by the checkpoint,
        # still in the store.
        self.stdout.write(f"dead letters: {dead}" + (" (latest first)" if dead else ""))
        for letter in latest:
            self.stdout.write(
                f"  {letter.dead_at:%Y-%m-%d %H:%M:%S} position {letter.position} "
                f"event {letter.event_id} {letter.event_type} {letter.subject or '-'} "
                f"{letter.size} bytes: {letter.reason}"
            )
