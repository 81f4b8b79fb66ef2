"""``magictoolbox sweep``: time out attempts past their deadline; expire finished executions.

Candidates come from the status read model; the decider has the last word on each (a stale row
costs a refused command, nothing else). Blob removal arrives with blob storage; until then
expiring records that no files were removed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from projections import status
from projections.db import Database
from services.executions.service import ExecutionService
from services.executions.sweeper import sweep_retention, sweep_timeouts
from web.core.cli import add_store_argument, opened_store
from web.core.management.commands.projections import add_db_argument


class Command(BaseCommand):
    help = "Fail executions whose attempt passed its deadline; expire those past retention."

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
        with (
            opened_store(options["store"]) as store,
            Database(options["db"] or settings.DATABASE_URL) as db,
        ):
            service = ExecutionService(store, source=settings.MAGICTOOLBOX_SOURCE)
            processing = [UUID(r.execution_id) for r in status.in_status(db, ["processing"])]
            finished = [
                (UUID(r.execution_id), r.finished_at or r.updated_at)
                for r in status.in_status(db, ["completed", "failed", "cancelled"])
            ]
            timeouts = sweep_timeouts(service, processing, now)
            expiry = sweep_retention(service, finished, now)
        self.stdout.write(
            f"timed out {len(timeouts.timed_out)} of {len(processing)} processing; "
            f"expired {len(expiry.expired)} of {len(finished)} finished"
        )
        for execution_id in timeouts.timed_out:
            self.stdout.write(f"  timeout  {execution_id}")
        for execution_id in expiry.expired:
            self.stdout.write(f"  expired  {execution_id}")
