"""``magictoolbox replay <execution>``: run an execution again as a new one, linked by replay_of."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from django.core.management.base import BaseCommand, CommandError, CommandParser

from services.executions.commands import RecordUpload, Submit
from services.executions.decider import Status
from services.executions.service import ExecutionService, Trace
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
            service = ExecutionService(store)
            state, _ = service.load(original)
            if state.status is Status.NEW:
                raise CommandError(f"no execution {original}", returncode=1)
            if state.input is not None and state.upload is None:
                raise CommandError(
                    f"execution {original} never received its input file: nothing to replay",
                    returncode=1,
                )
            replay = uuid4()
            trace = Trace(correlation_id=str(original), causation_id=f"replay:{original}")
            service.handle(
                replay,
                Submit(
                    execution_id=replay,
                    tool=state.tool,
                    category=state.category,
                    tool_version=state.tool_version,
                    mode=state.mode,  # type: ignore[arg-type]
                    owner=state.owner,
                    params=dict(state.params or {}),
                    input=state.input,
                    replay_of=original,
                ),
                trace,
            )
            if state.upload is not None:
                service.handle(replay, RecordUpload(blob=state.upload), trace)
        self.stdout.write(f"replayed {original} as {replay}")
        self.stdout.write(str(replay))
