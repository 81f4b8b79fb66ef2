"""The Azure Functions app (Python v2 programming model): the workers of MagicToolbox.

One Event Grid-triggered function per tool category takes the events that make an execution ready
for an attempt (``Submitted``, ``Uploaded``, ``Retried``) under ``/tools/<category>/``, so a slow
video never queues behind a quick hash; timers sweep timeouts and retries, expire old files, relay
the outbox (and catch up the audit anchors) and deliver user webhooks. The trigger bindings hold
the filters, from which the Event Grid subscriptions in ``infra/`` and the local host's routing
are read. ``create`` makes the app over a process's parts; Azure indexes ``app``, built from the
app settings on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import azure.functions as func

from events.catalog import Retried, Submitted, Uploaded
from handlers import anchoring, work
from handlers.bootstrap import Parts, bootstrap

CATEGORIES = ("encoders", "data", "image", "pdf", "video")
READY_FOR_WORK = [Submitted.event_type(), Uploaded.event_type(), Retried.event_type()]


def relay_and_anchor(parts: Parts) -> int:
    """The relay timer's job: publish what the web's relay left behind, then catch the audit
    anchors up in the same way (one timer, so no schedule setting of its own); events sent."""
    sent = work.relay(parts)
    anchoring.anchor(parts)
    return sent


TIMERS: dict[str, Callable[[Parts], object]] = {
    "sweep": work.sweep,
    "retention": work.expire,
    "relay": relay_and_anchor,
    "webhooks": work.deliver_webhooks,
}


def create(parts: Callable[[], Parts]) -> func.FunctionApp:
    """The Functions app, each function working with ``parts()``."""
    app = func.FunctionApp()
    for category in CATEGORIES:
        trigger = app.event_grid_trigger(
            arg_name="event",
            subject_begins_with=f"/tools/{category}/",
            included_event_types=READY_FOR_WORK,
        )
        app.function_name(category)(trigger(_worker(category, parts)))
    for name, job in TIMERS.items():
        schedule = f"%{name.upper()}_SCHEDULE%"
        timer = app.timer_trigger(arg_name="timer", schedule=schedule, run_on_startup=False)
        app.function_name(name)(timer(_timed(name, job, parts)))
    return app


def _worker(category: str, parts: Callable[[], Parts]) -> Callable[[func.CloudEvent], None]:
    def run(event: func.CloudEvent) -> None:
        work.on_execution_event(parts(), event)

    run.__name__ = run.__qualname__ = category
    return run


def _timed(
    name: str, job: Callable[[Parts], object], parts: Callable[[], Parts]
) -> Callable[[func.TimerRequest], None]:
    def run(timer: func.TimerRequest) -> None:
        job(parts())

    run.__name__ = run.__qualname__ = name
    return run


_parts: Parts | None = None
_lock = threading.Lock()


def from_app_settings() -> Parts:
    """This Functions process's parts, built from its app settings once."""
    global _parts
    with _lock:
        if _parts is None:
            _parts = bootstrap()
        return _parts


app = create(from_app_settings)
