"""``magictoolbox sweep``: what the Functions' timers do, once, now (or as of ``--now``).

Times out attempts past their deadline, re-queues retryable failures whose backoff is over,
expires finished executions past retention (removing their files) and clears stale temp files.
Candidates come from the status read model; the decider has the last word on each (a stale row
costs a refused command, nothing else).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from handlers import work
from web.core.cli import add_store_argument, command_parts
from web.core.management.commands.projections import add_db_argument


class Command(BaseCommand):
    help = "Time out stuck attempts, retry transient failures, expire old executions' files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", type=datetime.fromisoformat, help="sweep as of this ISO time (default: now)"
        )
        add_store_argument(parser)
        add_db_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        now = options["now"] or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        with command_parts(options["store"], options["db"]) as deployment:
            timeouts, retries = work.sweep(deployment, now)
            expiry, temp_removed = work.expire(deployment, now)
        self.stdout.write(
            f"lost {len(timeouts.lost)} (worker gone, re-queued); "
            f"timed out {len(timeouts.timed_out)} of {timeouts.considered} processing; "
            f"retried {len(retries.retried)} of {retries.considered} failed; "
            f"expired {len(expiry.expired)} of {expiry.considered} finished; "
            f"{temp_removed} temp files removed"
        )
        for execution_id in timeouts.lost:
            self.stdout.write(f"  lost     {execution_id}")
        for execution_id in timeouts.timed_out:
            self.stdout.write(f"  timeout  {execution_id}")
        for execution_id in retries.retried:
            self.stdout.write(f"  retried  {execution_id}")
        for execution_id in expiry.expired:
            self.stdout.write(f"  expired  {execution_id}")
