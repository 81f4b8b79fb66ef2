"""The web's side of user webhooks: whose endpoint it is, and how it is shown.

The API and the UI both come through here: each function names the acting user's owner id to
``services.webhooks.actions`` (where what a user sends is checked) and turns what it returns into
plain data. An endpoint's signing secret leaves only when it is made (``create``, ``rotate``):
``represent`` never includes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.urls import reverse

from services.webhooks.actions import (
    EVENT_NAMES,
    MAX_DESCRIPTION,
    MAX_URL,
    MESSAGE_STATUSES,
    Rotated,
    WebhookActions,
)
from services.webhooks.endpoints import Endpoint
from services.webhooks.messages import Attempt, Message
from web.executions import owner_of
from web.parts import parts

__all__ = ["EVENT_NAMES", "MAX_DESCRIPTION", "MAX_URL", "MESSAGE_STATUSES", "Rotated"]


def _actions() -> WebhookActions:
    return parts().webhooks


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def represent(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: everything but its secrets."""
    api = reverse("api-webhook-detail", args=[endpoint.id])
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "tools": list(endpoint.tools),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": _iso(endpoint.failing_since),
        "created_at": _iso(endpoint.created_at),
        "updated_at": _iso(endpoint.updated_at),
        "links": {
            "self": api,
            "deliveries": f"{api}deliveries/",
            "rotate_secret": f"{api}rotate-secret/",
            "recover": f"{api}recover/",
            "page": reverse("webhook-detail", args=[endpoint.id]),
        },
    }


def endpoints(user: Any) -> list[Endpoint]:
    return _actions().endpoints(owner_of(user))


def get(user: Any, endpoint_id: str) -> Endpoint:
    return _actions().get(owner_of(user), endpoint_id)


def create(user: Any, **fields: Any) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (the one time the secret is handed out)."""
    return _actions().create(owner_of(user), **fields)


def update(user: Any, endpoint_id: str, **changes: Any) -> Endpoint:
    return _actions().update(owner_of(user), endpoint_id, **changes)


def rotate(user: Any, endpoint_id: str) -> Rotated:
    return _actions().rotate(owner_of(user), endpoint_id)


def delete(user: Any, endpoint_id: str) -> None:
    _actions().delete(owner_of(user), endpoint_id)


def deliveries(
    user: Any, endpoint_id: str, *, status: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The endpoint's latest messages, newest first, each with its latest attempts."""
    found = _actions().deliveries(owner_of(user), endpoint_id, status=status, limit=limit)
    return [represent_message(message, attempts) for message, attempts in found]


def redeliver(user: Any, endpoint_id: str, message_id: str) -> dict[str, Any]:
    """Send one message again now, whatever became of it."""
    return represent_message(*_actions().redeliver(owner_of(user), endpoint_id, message_id))


def recover(user: Any, endpoint_id: str, since: datetime) -> int:
    """Send again every message that failed, made since ``since``: how many."""
    return _actions().recover(owner_of(user), endpoint_id, since)


def represent_attempt(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "at": _iso(attempt.at),
        "status": attempt.status,
        "ok": attempt.ok,
        "latency_ms": round(attempt.latency_ms, 1),
        "response": attempt.response,
        "error": attempt.error,
    }


def represent_message(message: Message, attempts: Iterable[Attempt]) -> dict[str, Any]:
    return {
        "id": message.id,
        "event_id": message.event_id,
        "event_type": message.event_type,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": _iso(message.next_attempt_at) if message.status == "pending" else None,
        "created_at": _iso(message.created_at),
        "updated_at": _iso(message.updated_at),
        "attempt_log": [
            represent_attempt(a) for a in sorted(attempts, key=lambda a: (a.attempt, a.at))
        ],
    }
