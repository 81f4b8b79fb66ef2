"""``magictoolbox audit verify|show``: prove no event was altered; show one execution's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.envelope import EXECUTION_STREAM_PREFIX, execution_stream
from events.errors import StreamNotFound
from events.store import EventStore
from services.executions.service import ExecutionService
from web.core.cli import add_store_argument, data_summary, iso_time, opened_store


def execution_id_argument(value: str) -> UUID:
    try:
        return UUID(value.removeprefix(EXECUTION_STREAM_PREFIX))
    except ValueError:
        raise CommandError(f"{value!r} is not an execution id", returncode=1) from None


class Command(BaseCommand):
    help = "Audit the event store: verify that no stored event was altered, or show a timeline."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{verify,show}")
        verify = actions.add_parser("verify", help="recompute the per-stream hash chains")
        which = verify.add_mutually_exclusive_group(required=True)
        which.add_argument("stream", nargs="?", help="the stream to verify")
        which.add_argument("--all", action="store_true", help="verify every stream")
        add_store_argument(verify)

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
