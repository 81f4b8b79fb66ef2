"""``magictoolbox audit verify``: recompute hash chains and name the first altered event."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.errors import StreamNotFound
from web.core.cli import add_store_argument, opened_store


class Command(BaseCommand):
    help = "Audit the event store: verify that no stored event was altered."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{verify}")
        verify = actions.add_parser("verify", help="recompute the per-stream hash chains")
        which = verify.add_mutually_exclusive_group(required=True)
        which.add_argument("stream", nargs="?", help="the stream to verify")
        which.add_argument("--all", action="store_true", help="verify every stream")
        add_store_argument(verify)

    def handle(self, *args: Any, **options: Any) -> None:
        stream = options["stream"]
        with opened_store(options["store"]) as store:
            if options["all"]:
                report = store.verify_all()
            else:
                try:
                    report = store.verify(stream)
                except StreamNotFound:
                    raise CommandError(f"no stream {stream!r}", returncode=1) from None
                if report.streams == 0:
                    raise CommandError(f"no stream {stream!r}", returncode=1)
        self.stdout.write(f"checked {report.streams} streams, {report.events} events")
        broken = report.broken
        if broken is None:
            self.stdout.write("intact: every hash chain matches")
            return
        self.stdout.write(
            "BROKEN: first altered event\n"
            f"  stream:   {broken.stream}\n"
            f"  version:  {broken.version}\n"
            f"  position: {broken.position}\n"
            f"  id:       {broken.event_id}\n"
            f"  reason:   {broken.reason}"
        )
        raise CommandError(f"hash chain broken in stream {broken.stream!r}", returncode=1)
