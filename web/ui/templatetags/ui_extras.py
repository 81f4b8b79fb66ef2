"""Template filters of the UI: how times, statuses, events and categories read on a page.

The script (``static/ui/main.js``; these helpers are in its ``format.js``) formats what it
inserts live the same way (``when``), so a row rendered by the server and one added by the script
look alike.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from django import template

from events.catalog import duration

register = template.Library()

CATEGORY_LABELS = {"pdf": "PDF"}


@register.filter
def when(value: str | datetime | None) -> str:
    """An ISO time as ``2025-01-31 12:03:04 UTC``; an em dash when there is none."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _time(value: str | datetime | None) -> datetime | None:
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def wait(seconds: int) -> str:
    """A wait as people read it: ``25 s``, ``4 min 5 s``, ``1 h 2 min`` (``format.js``'s too)."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _next_attempt(execution: dict[str, Any]) -> str:
    attempt = f"attempt {int(execution.get('attempt') or 0) + 1}"
    most = execution.get("max_attempts")
    return f"{attempt} of {most}" if most else attempt


@register.filter
def retry_note(execution: dict[str, Any] | None, now: datetime | None = None) -> str:
    """What the status panel shows of a pending retry, counting down: ``Retrying in 25 s
    (attempt 2 of 3)``; the script (``executions.js``) keeps it ticking. Empty unless retrying."""
    if not execution or execution.get("status") != "retrying":
        return ""
    due = _time(execution.get("next_attempt_at"))
    if due is None:
        return f"Retrying: waiting for a worker ({_next_attempt(execution)})"
    left = math.ceil((due - (now or datetime.now(UTC))).total_seconds())
    if left <= 0:
        return f"Retrying shortly ({_next_attempt(execution)})"
    return f"Retrying in {wait(left)} ({_next_attempt(execution)})"


@register.filter
def retry_said(execution: dict[str, Any] | None) -> str:
    """The same for screen readers, which a ticking count would interrupt every second:
    ``Retrying at 2025-01-31 12:03:04 UTC (attempt 2 of 3)``."""
    if not execution or execution.get("status") != "retrying":
        return ""
    if not execution.get("next_attempt_at"):
        return retry_note(execution)
    return f"Retrying at {when(execution['next_attempt_at'])} ({_next_attempt(execution)})"


@register.filter
def status_class(status: str | None) -> str:
    return f"status-{status or 'unknown'}"


@register.filter
def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category[:1].upper() + category[1:])


@register.filter
def event_name(event_type: str | None) -> str:
    """``MagicToolbox.Execution.Completed`` → ``Completed``."""
    return (event_type or "").rsplit(".", 1)[-1]


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def cloudevent_json(entry: dict[str, Any] | None) -> str:
    """A timeline entry's stored CloudEvent, without the ``summary`` the API adds for people."""
    if not entry:
        return ""
    return pretty_json({k: v for k, v in entry.items() if k != "summary"})


register.filter("duration", duration)
