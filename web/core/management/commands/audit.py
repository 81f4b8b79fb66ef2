"""``magictoolbox audit verify|show|anchor``: prove no event was altered or removed; show one
execution's timeline; catch the keyed anchors up with the feed.

``verify`` recomputes the hash chains, then compares the keyed anchors (events.anchors) with
the events: what the chains cannot see, a removed tail or stream or a recomputed chain, shows
there. Events after the last anchor are reported as not yet anchored: nothing vouches for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.anchor_check import AnchorReport, check, table_present
from events.anchors import Anchorer, AnchorError, AnchorKey
from events.database import Database
from events.envelope import EXECUTION_STREAM_PREFIX, execution_stream
from events.errors import StreamNotFound
from events.store import EventStore, VerifyReport
from handlers.anchoring import audit_key, store_database_url
from handlers.settings import SettingsError
from services.executions.service import ExecutionService
from web.core.cli import add_store_argument, data_summary, iso_time, opened_store
from web.parts import parts

MAX_LINES = 50  # findings printed; a changed key makes one per stream


def execution_id_argument(value: str) -> UUID:
    try:
        return UUID(value.removeprefix(EXECUTION_STREAM_PREFIX))
    except ValueError:
        raise CommandError(f"{value!r} is not an execution id", returncode=1) from None


class Command(BaseCommand):
    help = "Audit the event store: verify that no stored event was altered, or show a timeline."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{verify,show,anchor}"
        )
        verify = actions.add_parser(
            "verify", help="recompute the hash chains and check them against the keyed anchors"
        )
        which = verify.add_mutually_exclusive_group(required=True)
        which.add_argument("stream", nargs="?", help="the stream to verify")
        which.add_argument("--all", action="store_true", help="verify every stream and the feed")
        verify.add_argument(
            "--anchored-at-least",
            type=int,
            metavar="POSITION",
            help="fail unless the anchors cover this feed position (one noted earlier, outside "
            "the database: only so can events removed together with their anchors show)",
        )
        add_store_argument(verify)

        anchor = actions.add_parser("anchor", help="anchor the feed up to its head now")
        add_store_argument(anchor)

        show = actions.add_parser("show", help="an execution's timeline, checked link by link")
        show.add_argument("execution", help="execution id (or execution-<id>)")
        when = show.add_mutually_exclusive_group()
        when.add_argument("--version", type=int, help="also print the state as of this version")
        when.add_argument(
            "--at", type=datetime.fromisoformat, help="also print the state as of this ISO time"
        )
        add_store_argument(show)

    def handle(self, *args: Any, **options: Any) -> None:
        with opened_store(options["store"]) as store:
            if options["action"] == "show":
                self.show(store, execution_id_argument(options["execution"]), options)
            elif options["action"] == "anchor":
                self.anchor(store, options)
            else:
                self.verify(store, options)

    def show(self, store: EventStore, execution_id: UUID, options: dict[str, Any]) -> None:
        stream = execution_stream(execution_id)
        events = store.read_stream(stream)
        if not events:
            raise CommandError(f"no execution {execution_id}", returncode=1)
        broken = store.verify(stream).broken
        self.stdout.write(f"{stream}: {len(events)} events")
        self.stdout.write(f"{'ver':>4}  {'time':<24}  {'type':<10}  chain  data")
        for event in events:
            ok = broken is None or event.version < broken.version
            data = event.data
            data.pop("execution_id", None)  # the stream says it already
            self.stdout.write(
                f"{event.version:>4}  {iso_time(event):<24}  {event.type.rsplit('.', 1)[1]:<10}  "
                f"{'ok' if ok else 'BROKEN':<5}  {data_summary(data, 70)}"
            )
        if options["version"] is not None or options["at"] is not None:
            state = ExecutionService(store).state_at(
                execution_id, version=options["version"], at=options["at"]
            )
            when = f"version {options['version']}" if options["at"] is None else options["at"]
            self.stdout.write(
                f"as of {when}: {state.status.value}, attempt {state.attempt}, "
                f"{state.percent:g}%" + (f", error {state.error.code}" if state.error else "")
            )
        if broken is not None:
            raise CommandError(
                f"hash chain broken at version {broken.version}: {broken.reason}", returncode=1
            )

    def verify(self, store: EventStore, options: dict[str, Any]) -> None:
        stream = options["stream"]
        key = self.key()
        with Database(self.database_url(store, options)) as db:
            if options["all"]:
                report = store.verify_all()
            else:
                try:
                    report = store.verify(stream)
                except StreamNotFound:
                    report = VerifyReport(0, 0, None)
            anchors = check(db, key, stream) if table_present(db) else None
        if report.streams == 0 and stream and not (anchors and anchors.streams_checked):
            raise CommandError(f"no stream {stream!r}", returncode=1)
        self.stdout.write(f"checked {report.streams} streams, {report.events} events")
        broken = report.broken
        if broken is None:
            self.stdout.write("intact: every hash chain matches")
        else:
            self.stdout.write(
                "BROKEN: first altered event\n"
                f"  stream:   {broken.stream}\n"
                f"  version:  {broken.version}\n"
                f"  position: {broken.position}\n"
                f"  id:       {broken.event_id}\n"
                f"  reason:   {broken.reason}"
            )
        problems = self.report_anchors(anchors, options["anchored_at_least"])
        if broken is not None:
            raise CommandError(f"hash chain broken in stream {broken.stream!r}", returncode=1)
        if problems:
            raise CommandError(
                f"{problems} differences from the keyed anchors: the store no longer holds "
                "what was anchored",
                returncode=1,
            )

    def report_anchors(self, anchors: AnchorReport | None, at_least: int | None) -> int:
        """Print what the anchors say; how many problems they show."""
        feed = anchors.feed if anchors is not None else None
        if anchors is None:
            self.stdout.write(
                "anchors: none (this store has no anchor tables; `magictoolbox migrate` makes "
                "them): nothing proves that no event was removed"
            )
        elif feed is None and not anchors.findings:
            self.stdout.write(
                "anchors: none yet: nothing proves that no event was removed (the web process "
                "anchors as the feed advances; `magictoolbox audit anchor` does it now)"
            )
        elif feed is not None:
            self.stdout.write(
                f"anchored: up to position {feed.position} ({feed.events} events in "
                f"{feed.streams} streams) at {feed.anchored_at}, anchoring since "
                f"{feed.started_at}; {anchors.streams_checked} stream anchors checked"
            )
        if anchors is not None and anchors.unanchored:
            after = feed.position if feed is not None else 0
            self.stdout.write(
                f"not yet anchored: {anchors.unanchored} events after position {after} "
                "(nothing vouches for them until the next anchor)"
            )
        lines = [finding.line for finding in anchors.findings] if anchors is not None else []
        covered = feed.position if feed is not None else 0
        if at_least is not None and covered < at_least:
            lines.append(
                f"ROLLED BACK: the anchors cover up to position {covered}, but position "
                f"{at_least} was anchored before: events and anchors were removed together"
            )
        for line in lines[:MAX_LINES]:
            self.stdout.write(line)
        if len(lines) > MAX_LINES:
            self.stdout.write(f"… and {len(lines) - MAX_LINES} more")
        if anchors is not None and not lines and feed is not None:
            self.stdout.write("anchors: every anchor verifies and matches the store")
        return len(lines)

    def anchor(self, store: EventStore, options: dict[str, Any]) -> None:
        worker = Anchorer(store, self.database_url(store, options), self.key())
        try:
            anchored = worker.run_once()
        except AnchorError as exc:
            raise CommandError(f"cannot anchor: {exc}", returncode=1) from None
        finally:
            worker.close()
        head = worker.head
        if head is None:
            self.stdout.write("nothing to anchor: the feed is empty")
            return
        self.stdout.write(
            f"anchored {anchored} events: the anchors cover up to position {head.position} "
            f"({head.events} events in {head.streams} streams)"
        )

    def key(self) -> AnchorKey:
        try:
            return audit_key(parts().settings)
        except SettingsError as exc:
            raise CommandError(f"no audit key: {exc}", returncode=1) from None

    def database_url(self, store: EventStore, options: dict[str, Any]) -> str:
        return store_database_url(store, options["store"] or parts().settings.eventstore_url)
