"""Template filters of the UI: how times, statuses, events and categories read on a page.

``static/ui/app.js`` formats what it inserts live the same way (``when``, ``eventSummary``), so a
row rendered by the server and one added by the script look alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import template
from django.template.defaultfilters import filesizeformat

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
def duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


@register.filter
def event_summary(event: dict[str, Any] | None) -> str:
    """The one line worth reading of an event's data (the JSON has the rest)."""
    if not isinstance(event, dict):
        return ""
    name = event_name(event.get("type", ""))
    data = event.get("data") or {}
    if name == "Submitted":
        text = f"{data.get('tool', '')} ({data.get('mode', '')})"
        declared = data.get("input") or {}
        if declared.get("filename"):
            text += f", input {declared['filename']}"
        return text + (f", replay of {data['replay_of']}" if data.get("replay_of") else "")
    if name == "Uploaded":
        blob = data.get("blob") or {}
        return f"stored {filesizeformat(blob.get('size', 0))} ({blob.get('content_type', '')})"
    if name == "Processing":
        return f"attempt {data.get('attempt')} by {data.get('worker_id', '')}"
    if name == "Progress":
        message = f" {data['message']}" if data.get("message") else ""
        return f"{float(data.get('percent', 0)):g}%{message}"
    if name == "Completed":
        kind = "a file" if data.get("output") else "an inline result"
        return f"{kind} in {duration(data.get('duration_ms'))}"
    if name == "Failed":
        retry = " (retryable)" if data.get("retryable") else ""
        return f"{data.get('code', '')}: {data.get('message', '')}{retry}"
    if name == "Cancelled":
        return data.get("reason", "")
    if name == "Retried":
        return f"next attempt {data.get('next_attempt')}"
    if name == "Expired":
        count = len(data.get("blobs_removed") or [])
        return f"{count} file{'s' if count != 1 else ''} removed"
    return ""
