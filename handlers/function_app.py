"""The Azure Functions app (Python v2 programming model): the workers of MagicToolbox.

One Event Grid-triggered function per tool category takes the events that make an execution
ready for an attempt — ``Submitted`` (tools without an input file), ``Uploaded`` and
``Retried`` — for subjects under ``/tools/<category>/``, so a slow video never queues behind a
quick hash. Timer functions time out dead attempts, re-queue retryable failures, expire old
files, sweep the outbox to Event Grid (the web process relays right after each commit; the
timer publishes whatever that left, e.g. while the web is down), and deliver user webhooks (the
web process delivers as events arrive; the timer sends what is due, retries included). Each
function is one line into ``handlers.work``.

The subject and type filters live on the trigger bindings (``subjectBeginsWith``,
``includedEventTypes``): Azure ignores them there, and they are what the Event Grid
subscriptions in ``infra/`` are generated from and what the local host filters by, so the
routing is written once. Event Grid delivers CloudEvents (the topic's schema), which the Python
worker hands over as ``func.CloudEvent``; the local host's feed delivery hands
``func.EventGridEvent``s, and ``handlers.work`` takes either. Schedules are ``%APP_SETTING%``
references, resolved from app settings (``handlers.wiring.DEFAULT_SCHEDULES`` locally).
"""

from __future__ import annotations

import azure.functions as func

from events.catalog import Retried, Submitted, Uploaded
from handlers import work
from handlers.wiring import dependencies

app = func.FunctionApp()

READY_FOR_WORK = [Submitted.event_type(), Uploaded.event_type(), Retried.event_type()]


def _tools(category: str) -> str:
    return f"/tools/{category}/"


@app.function_name("encoders")
@app.event_grid_trigger(
    arg_name="event", subject_begins_with=_tools("encoders"), included_event_types=READY_FOR_WORK
)
def encoders(event: func.CloudEvent) -> None:
    work.on_execution_event(dependencies(), event)


@app.function_name("data")
@app.event_grid_trigger(
    arg_name="event", subject_begins_with=_tools("data"), included_event_types=READY_FOR_WORK
)
def data(event: func.CloudEvent) -> None:
    work.on_execution_event(dependencies(), event)


@app.function_name("image")
@app.event_grid_trigger(
    arg_name="event", subject_begins_with=_tools("image"), included_event_types=READY_FOR_WORK
)
def image(event: func.CloudEvent) -> None:
    work.on_execution_event(dependencies(), event)


@app.function_name("pdf")
@app.event_grid_trigger(
    arg_name="event", subject_begins_with=_tools("pdf"), included_event_types=READY_FOR_WORK
)
def pdf(event: func.CloudEvent) -> None:
    work.on_execution_event(dependencies(), event)


@app.function_name("video")
@app.event_grid_trigger(
    arg_name="event", subject_begins_with=_tools("video"), included_event_types=READY_FOR_WORK
)
def video(event: func.CloudEvent) -> None:
    work.on_execution_event(dependencies(), event)


@app.function_name("sweep")
@app.timer_trigger(arg_name="timer", schedule="%SWEEP_SCHEDULE%", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    work.sweep(dependencies())


@app.function_name("retention")
@app.timer_trigger(arg_name="timer", schedule="%RETENTION_SCHEDULE%", run_on_startup=False)
def retention(timer: func.TimerRequest) -> None:
    work.expire(dependencies())


@app.function_name("relay")
@app.timer_trigger(arg_name="timer", schedule="%RELAY_SCHEDULE%", run_on_startup=False)
def relay(timer: func.TimerRequest) -> None:
    work.relay(dependencies())


@app.function_name("webhooks")
@app.timer_trigger(arg_name="timer", schedule="%WEBHOOKS_SCHEDULE%", run_on_startup=False)
def webhooks(timer: func.TimerRequest) -> None:
    work.deliver_webhooks(dependencies())
