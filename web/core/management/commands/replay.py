"""``magictoolbox replay <execution>``: run an execution again as a new one, linked by replay_of.

The new execution gets its own copy of the input file. An async tool's replay is picked up by the
Functions host like any submission; a sync tool's replay runs here and now, as its request would.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from services.executions.service import ExecutionService
from services.tools.runner import ToolRunner
from services.tools.submissions import SubmissionRefused, replay
from web import bootstrap
from web.core.cli import add_store_argument, opened_store
from web.core.management.commands.audit import execution_id_argument


class Command(BaseCommand):
    help = "Submit a new execution with the same tool, parameters and input as an earlier one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("execution", help="execution id (or execution-<id>) to replay")
        add_store_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        original = execution_id_argument(options["execution"])
        with opened_store(options["store"]) as store:
            service = ExecutionService(store, source=settings.MAGICTOOLBOX_SOURCE)
            blobs = bootstrap.blob_store()
            try:
                replay_id = replay(service, blobs, original)
            except SubmissionRefused as exc:
                raise CommandError(str(exc), returncode=1) from None
            state, _ = service.load(replay_id)
            if state.mode == "sync":
                runner = ToolRunner(service, blobs, bootstrap.tool_registry(), worker_id="replay")
                report = runner.run(replay_id)
                self.stdout.write(
                    f"ran {state.tool}: {report.outcome} {report.code or ''}".rstrip()
                )
        self.stdout.write(f"replayed {original} as {replay_id}")
        self.stdout.write(str(replay_id))
