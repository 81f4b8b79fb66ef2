"""``magictoolbox functions``: the local Functions host (and the projector) on their own.

``functions`` runs the host until Ctrl-C; ``--http`` serves the Event Grid trigger instead (Event
Grid, or the emulator, pushes) and runs the timers; ``deadletters`` lists deliveries that ran out
of attempts and ``redrive ID…`` (or ``--all``) delivers them again; ``list`` shows the functions
and their triggers; ``subscriptions --url URL`` prints the Event Grid subscriptions (the
emulator's config shape) that would push each function's events to a host at URL.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from handlers import function_app
from handlers.bindings import read_bindings
from handlers.deadletters import DeadLetterStore, redrive
from handlers.eventgrid_trigger import event_subscriptions
from web.parts import parts


class Command(BaseCommand):
    help = "Run the local Functions host, or list and re-drive its dead letters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action",
            nargs="?",
            default="run",
            choices=["run", "deadletters", "redrive", "list", "subscriptions"],
        )
        parser.add_argument("ids", nargs="*", help="dead letter ids (redrive)")
        parser.add_argument("--all", action="store_true", help="redrive every dead letter")
        parser.add_argument(
            "--workers", type=int, default=64, help="invocations in flight (they share the pool)"
        )
        parser.add_argument(
            "--no-projector", action="store_true", help="run without the in-process projector"
        )
        parser.add_argument(
            "--http",
            action="store_true",
            help="take events from Event Grid at /runtime/webhooks/EventGrid instead of the feed",
        )
        parser.add_argument("--host", default="127.0.0.1", help="address for --http")
        parser.add_argument("--port", type=int, default=7071, help="port for --http")
        parser.add_argument(
            "--url", default="http://127.0.0.1:7071", help="the host's base URL (subscriptions)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        letters = parts().deadletters()
        letters.setup()
        action = options["action"]
        if action == "run":
            self._run(options)
        elif action == "list":
            subscriptions, timers = read_bindings(function_app.app, parts().settings.schedules)
            for s in subscriptions:
                types = ", ".join(t.rsplit(".", 1)[-1] for t in s.included_event_types) or "all"
                self.stdout.write(f"{s.name:<12} eventGrid  {s.subject_begins_with}*  [{types}]")
            for t in timers:
                self.stdout.write(f"{t.name:<12} timer      {t.schedule}")
        elif action == "subscriptions":
            subscriptions, _ = read_bindings(function_app.app)
            doc = event_subscriptions(subscriptions, options["url"])
            self.stdout.write(json.dumps(doc, indent=2))
        elif action == "deadletters":
            rows = letters.list()
            for row in rows:
                self.stdout.write(
                    f"{row.id}  {row.dead_at:%Y-%m-%d %H:%M:%S}  {row.function:<10} "
                    f"{row.event_type.rsplit('.', 1)[-1]:<10} {row.subject}  "
                    f"attempts={row.attempts}  {row.last_error}"
                )
            self.stdout.write(f"{len(rows)} dead letter(s)")
        else:
            self._redrive(letters, options)

    def _redrive(self, letters: DeadLetterStore, options: dict[str, Any]) -> None:
        ids = [row.id for row in letters.list()] if options["all"] else options["ids"]
        if not ids:
            raise CommandError("name dead letter ids to redrive, or --all")
        deployment = parts()
        app = function_app.create(lambda: deployment)  # the functions work with these parts
        failures = 0
        for letter_id in ids:
            try:
                error = redrive(app, letters, letter_id, deployment.settings.source)
            except KeyError as exc:
                raise CommandError(str(exc.args[0])) from None
            if error is None:
                self.stdout.write(f"redriven  {letter_id}")
            else:
                failures += 1
                self.stdout.write(f"failed    {letter_id}  {error}")
        if failures:
            raise CommandError(f"{failures} of {len(ids)} dead letters failed again")

    def _run(self, options: dict[str, Any]) -> None:
        from web.runtime import Background

        background = Background(
            parts(),
            projector=not options["no_projector"],
            workers=options["workers"],
            feed=not options["http"],
        )
        if options["http"]:
            self._serve(background, options)
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        background.start()
        assert background.host is not None
        self.stdout.write(
            f"functions host running: {len(background.host.subscriptions)} event functions, "
            f"{len(background.host.timers)} timers (Ctrl-C stops)"
        )
        stop.wait()
        background.stop()
        self.stdout.write("stopped")

    def _serve(self, background: Any, options: dict[str, Any]) -> None:
        import uvicorn

        from handlers.eventgrid_trigger import PATH, EventGridTrigger

        assert background.host is not None
        trigger = EventGridTrigger(background.host.subscriptions, workers=options["workers"])
        host, port = options["host"], options["port"]
        background.start()
        self.stdout.write(
            f"functions host: Event Grid trigger at http://{host}:{port}{PATH}?functionName=… "
            f"({', '.join(trigger.functions)}); {len(background.host.timers)} timers "
            "(Ctrl-C stops)",
        )
        self.stdout.flush()
        try:
            uvicorn.run(trigger, host=host, port=port, log_level="warning", lifespan="off")
        finally:
            background.stop()
            trigger.close()
            self.stdout.write("stopped")
