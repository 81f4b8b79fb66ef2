"""``magictoolbox rebuild <projection> | --all``: replay read models from the start of the feed."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.progress import Progress as RichProgress

from projections.rebuild import BATCH, Progress, rebuild
from projections.registry import ALL, named
from web.core.cli import add_store_argument, opened_store
from web.core.management.commands.projections import add_db_argument
from web.parts import parts


class Command(BaseCommand):
    help = "Rebuild projections from position 0 into fresh tables and swap them in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("projection", nargs="?", help=f"one of: {', '.join(ALL)}")
        parser.add_argument("--all", action="store_true", help="rebuild every projection")
        parser.add_argument("--batch-size", type=int, default=BATCH, metavar="N")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_store_argument(parser)
        add_db_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all"] == bool(options["projection"]):
            raise CommandError("name one projection or pass --all", returncode=2)
        try:
            projections = named(None if options["all"] else [options["projection"]])
        except KeyError as exc:
            raise CommandError(exc.args[0], returncode=2) from None
        db_url = options["db"] or parts().read_models_url
        with opened_store(options["store"]) as store:
            for projection in projections:
                with self._progress(projection.name, quiet=options["no_progress"]) as progress:
                    result = rebuild(
                        store, db_url, projection.name, progress, batch_size=options["batch_size"]
                    )
                self.stdout.write(
                    f"rebuilt {result.name}: {result.events} events, checkpoint {result.position}"
                )

    def _progress(self, name: str, *, quiet: bool) -> _Bar:
        if quiet:
            return _Bar(None)
        if not sys.stderr.isatty():  # a log or a pipe: whole percentages, one line each
            return _PercentBar(name, self.stdout)
        return _RichBar(name, RichProgress(transient=False))


class _Bar:
    """No progress shown: a context manager that is also the rebuild's progress callback."""

    def __init__(self, callback: Progress | None) -> None:
        self.callback = callback

    def __enter__(self) -> Progress | None:
        return self.callback

    def __exit__(self, *exc: object) -> None:
        pass


class _PercentBar(_Bar):
    def __init__(self, name: str, out: Any) -> None:
        super().__init__(self.report)
        self.name, self.out, self.shown = name, out, -1

    def report(self, position: int, head: int) -> None:
        percent = 100 * position // head if head else 100
        if percent != self.shown:
            self.shown = percent
            self.out.write(f"{self.name}: {percent}% ({position}/{head})")


class _RichBar(_Bar):
    def __init__(self, name: str, progress: Any) -> None:
        super().__init__(self.report)
        self.progress = progress
        self.task = progress.add_task(f"rebuild {name}", total=None)

    def report(self, position: int, head: int) -> None:
        self.progress.update(self.task, completed=position, total=head)

    def __enter__(self) -> Progress | None:
        self.progress.start()
        return self.callback

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
