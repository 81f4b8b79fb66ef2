"""``magictoolbox replay <execution>``: run an execution again as a new one, linked by replay_of.

The new execution gets its own copy of the input file. An async tool's replay is picked up by the
Functions host like any submission; a sync tool's replay runs here and now, as its request would.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from services.problems import Problem
from web.core.cli import add_store_argument, command_parts
from web.core.management.commands.audit import execution_id_argument


class Command(BaseCommand):
    help = "Submit a new execution with the same tool, parameters and input as an earlier one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("execution", help="execution id (or execution-<id>) to replay")
        add_store_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        original = execution_id_argument(options["execution"])
        with command_parts(options["store"]) as deployment:
            try:
                replayed = deployment.executions.replay(None, original)  # an operator's: anyone's
            except Problem as exc:
                raise CommandError(str(exc), returncode=1) from None
            replay_id, state = replayed.id, replayed.state
            if state.mode == "sync":
                code = state.error.code if state.error else ""
                self.stdout.write(f"ran {state.tool}: {state.status.value} {code}".rstrip())
        self.stdout.write(f"replayed {original} as {replay_id}")
        self.stdout.write(str(replay_id))
