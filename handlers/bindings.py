"""What the local host reads off ``function_app.py``: its functions and their bindings.

``read_bindings`` turns ``app.get_functions()`` into Event Grid subscriptions (the filters of
each trigger binding) and timers (NCRONTAB schedules, ``%SETTING%`` resolved), the way the
Functions runtime and the Event Grid subscriptions in ``infra/`` read them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import azure.functions as func
from croniter import croniter

from events.envelope import RecordedEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventSubscription:
    """An Event Grid-triggered function with its filters, read off the app's bindings."""

    name: str
    function: Callable[..., Any]
    arg_name: str
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    included_event_types: tuple[str, ...] = ()

    def matches(self, event_type: str, subject: str) -> bool:
        if self.included_event_types and event_type not in self.included_event_types:
            return False
        return subject.startswith(self.subject_begins_with) and subject.endswith(
            self.subject_ends_with
        )


@dataclass(frozen=True, slots=True)
class TimerFunction:
    name: str
    function: Callable[..., Any]
    arg_name: str
    schedule: str  # NCRONTAB, resolved
    run_on_startup: bool = False

    def next_after(self, moment: datetime) -> datetime:
        return croniter(self.schedule, moment, second_at_beginning=True).get_next(datetime)


_indexed: dict[int, list[Any]] = {}
_indexed_lock = threading.Lock()


class _NoAuthLevelNotice(logging.Filter):
    """azure-functions warns, on every indexing, that an app without HTTP triggers has no auth
    level to apply: true, and of no use to someone starting ``make run``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Auth level is not applied")


def functions_of(app: func.FunctionApp) -> list[Any]:
    """``app.get_functions()``, once per app: indexing an app twice fails its uniqueness check."""
    with _indexed_lock:
        if id(app) not in _indexed:
            notice = _NoAuthLevelNotice()
            logging.getLogger().addFilter(notice)
            try:
                functions = app.get_functions()
            finally:
                logging.getLogger().removeFilter(notice)
            _indexed[id(app)] = [app, functions]  # keep app alive: its id stays its own
        return _indexed[id(app)][1]


def read_bindings(
    app: func.FunctionApp, settings: Mapping[str, str] | None = None
) -> tuple[list[EventSubscription], list[TimerFunction]]:
    """The app's Event Grid subscriptions and timers, as ``app.get_functions()`` declares them.

    ``settings`` resolve ``%NAME%`` schedules, and a schedule that is missing or bad is refused;
    without settings, schedules are left as written (for callers that only deliver events).
    """
    subscriptions: list[EventSubscription] = []
    timers: list[TimerFunction] = []
    for fn in functions_of(app):
        trigger = fn.get_trigger().get_dict_repr()
        user_function = fn.get_user_function()
        name = fn.get_function_name()
        if trigger["type"] == "eventGridTrigger":
            subscriptions.append(
                EventSubscription(
                    name=name,
                    function=user_function,
                    arg_name=trigger["name"],
                    subject_begins_with=trigger.get("subjectBeginsWith", ""),
                    subject_ends_with=trigger.get("subjectEndsWith", ""),
                    included_event_types=tuple(trigger.get("includedEventTypes", ())),
                )
            )
        elif trigger["type"] == "timerTrigger":
            schedule = trigger["schedule"]
            if settings is not None:
                schedule = _resolve(schedule, settings)
                croniter(schedule, second_at_beginning=True)  # refuse a bad schedule at start
            timers.append(
                TimerFunction(
                    name,
                    user_function,
                    trigger["name"],
                    schedule,
                    bool(trigger.get("runOnStartup")),
                )
            )
        else:
            log.warning(
                "function %s has a %s trigger, which the local host does not run",
                name,
                trigger["type"],
            )
    return subscriptions, timers


def event_grid_event(event: RecordedEvent, topic: str) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=str(event.id),
        data=event.data,
        topic=topic,
        subject=event.subject,
        event_type=event.type,
        event_time=event.time,
        data_version=str(event.schema_version),
    )


def _resolve(value: str, settings: Mapping[str, str]) -> str:
    """``%NAME%`` → the setting, as the Functions runtime resolves binding expressions."""
    if value.startswith("%") and value.endswith("%") and len(value) > 2:
        name = value[1:-1]
        if name not in settings:
            raise KeyError(f"the app setting {name} is not set")
        return settings[name]
    return value
