"""``magictoolbox events tail|show|status``: follow the feed, print a stream, show the head."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.envelope import RecordedEvent
from events.errors import StreamNotFound
from events.store import EventStore
from web.core.cli import (
    add_store_argument,
    cloudevent_line,
    data_summary,
    iso_time,
    opened_store,
)

BATCH = 500
# wait_for returns at least this often, so Ctrl-C and --limit-seconds are honoured promptly.
POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Follow the global event feed (tail) or print one stream's events (show)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{tail,show,status}")

        tail = actions.add_parser("tail", help="print events as they are appended")
        tail.add_argument(
            "--from",
            dest="from_position",
            type=int,
            metavar="POSITION",
            help="start after this global position (0: from the beginning; default: the head)",
        )
        tail.add_argument("--types", nargs="+", metavar="T", help="only these event types")
        tail.add_argument("--stream-prefix", metavar="P", help="only streams starting with P")
        tail.add_argument(
            "--limit-seconds", type=float, metavar="S", help="stop after S seconds (default: never)"
        )
        tail.add_argument("--json", action="store_true", help="one CloudEvent JSON per line")
        add_store_argument(tail)

        show = actions.add_parser("show", help="print one stream's events")
        show.add_argument("stream")
        show.add_argument("--json", action="store_true", help="one CloudEvent JSON per line")
        add_store_argument(show)

        status = actions.add_parser(
            "status", help="the feed's head, and what holds readers back if anything does"
        )
        add_store_argument(status)

    def handle(self, *args: Any, **options: Any) -> None:
        with opened_store(options["store"]) as store:
            if options["action"] == "tail":
                self.tail(store, options)
            elif options["action"] == "status":
                self.status(store)
            else:
                self.show(store, options["stream"], as_json=options["json"])

    def tail(self, store: EventStore, options: dict[str, Any]) -> None:
        position = options["from_position"]
        if position is None:
            position = store.head_position()
        limit = options["limit_seconds"]
        deadline = None if limit is None else time.monotonic() + limit
        try:
            while True:
                # Everything up to the head is visible now, so after reading we may skip to it
                # even when filters hid those events; otherwise wait_for would wake at once.
                head = store.head_position()
                batch = store.read_all(
                    after_position=position,
                    limit=BATCH,
                    types=options["types"],
                    stream_prefix=options["stream_prefix"],
                )
                for event in batch:
                    self.stdout.write(self._tail_line(event, options["json"]))
                self.stdout.flush()
                if batch:
                    position = batch[-1].position
                if len(batch) == BATCH:
                    continue
                position = max(position, head)
                timeout = POLL_SECONDS
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        return
                store.wait_for(position, timeout)
        except KeyboardInterrupt:
            self.stdout.flush()

    def status(self, store: EventStore) -> None:
        status = store.feed_status()
        self.stdout.write(f"readable head: {status.readable_head}")
        self.stdout.write(f"newest event:  {status.newest_position}")
        if status.held_back:
            self.stdout.write(
                "readers wait for these open write transactions to end (they never skip):"
            )
            for blocker in status.held_back_by:
                self.stdout.write(f"  {blocker}")

    def show(self, store: EventStore, stream: str, *, as_json: bool) -> None:
        try:
            events = store.read_stream(stream)
        except StreamNotFound:
            events = []
        if not events:
            raise CommandError(f"no stream {stream!r}", returncode=1)
        if as_json:
            for event in events:
                self.stdout.write(cloudevent_line(event))
            return
        self.stdout.write(f"{stream}: {len(events)} events")
        for event in events:
            self.stdout.write(
                f"{event.version:>4}  {iso_time(event)}  {event.type:<34}  {event.id}  "
                f"{data_summary(event.data)}"
            )

    @staticmethod
    def _tail_line(event: RecordedEvent, as_json: bool) -> str:
        if as_json:
            return cloudevent_line(event)
        return (
            f"{event.position:>8}  {event.stream}  v{event.version}  {event.type}  "
            f"{iso_time(event)}"
        )
