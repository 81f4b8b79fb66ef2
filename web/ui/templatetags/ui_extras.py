"""Template filters of the UI: how times, statuses, events and categories read on a page.

The script (``static/ui/main.js``; these helpers are in its ``format.js``) formats what it
inserts live the same way (``when``), so a row rendered by the server and one added by the script
look alike.
"""

from __future__ import annotations

import json
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
