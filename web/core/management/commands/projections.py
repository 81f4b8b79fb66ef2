"""``magictoolbox projections status|run``: how far each read model lags; keep them current."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from events import checkpoints
from events.connections import redacted
from events.database import Database
from projections.projector import Projector
from web.core.cli import add_store_argument, checkpoint_lines, opened_store
from web.parts import parts


def add_db_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="read-model database URL (sqlite:///path or postgresql://…); default: DATABASE_URL",
    )


class Command(BaseCommand):
    help = "Show each projection's checkpoint, the feed head, lag and last error; or run them."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{status,run}")
        status = actions.add_parser("status", help="checkpoint, head, lag and last error of each")
        add_store_argument(status)
        add_db_argument(status)
        run = actions.add_parser("run", help="apply new events until interrupted")
        run.add_argument("--batch-size", type=int, default=1000, metavar="N")
        add_store_argument(run)
        add_db_argument(run)

    def handle(self, *args: Any, **options: Any) -> None:
        db_url = options["db"] or parts().read_models_url
        with opened_store(options["store"]) as store:
            projector = Projector(store, db_url, batch_size=options.get("batch_size") or 1000)
            try:
                projector.setup()
                if options["action"] == "run":
                    self.run(projector, db_url)
                else:
                    self.status(projector)
            finally:
                projector.close()

    def status(self, projector: Projector) -> None:
        rows = [
            (s.name, s.checkpoint, s.head, s.last_error, s.failed_at) for s in projector.status()
        ]
        # Other feed readers keep their checkpoints in the same table: the outbox relay's lag
        # is as much a part of "how current is everything" as a read model's.
        named = {row[0] for row in rows}
        head = rows[0][2] if rows else projector.store.head_position()
        with Database(projector.db.url) as db:
            others = checkpoints.read_all(db)
        for name, c in sorted(others.items()):
            if name not in named:
                rows.append((name, c.position, head, c.last_error, c.failed_at))
        for line in checkpoint_lines(rows):
            self.stdout.write(line)

    def run(self, projector: Projector, db_url: str) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        self.stdout.write(f"projecting into {redacted(db_url)}; Ctrl-C stops")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            projector.run(stop)
        except KeyboardInterrupt:
            stop.set()
