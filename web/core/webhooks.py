"""What a signed-in user can do with their webhook endpoints, shared by the REST API and the UI.

Like ``web.core.executions``: each function takes the acting user, checks that the endpoint is
theirs (another user's is "not found", never "forbidden"), calls ``projections.webhooks`` and
returns plain data. What a user sends is checked here once for both edges: the URL must be a
safe target (``services.webhooks.ssrf``: https on a public address), event types must be in the
execution catalog and tools in the registry. Errors are ``Problem``s with a stable ``code``.

An endpoint's signing secret leaves this module only when it is made (``create``, ``rotate``):
``represent`` never includes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse

from events.catalog import EXECUTION_EVENTS, TYPE_PREFIX
from events.database import Database
from projections import webhooks as model
from projections.webhooks import Attempt, Endpoint, Message
from services.webhooks.signing import new_secret
from services.webhooks.ssrf import MAX_URL_LENGTH, UnsafeURL, check_url
from web import bootstrap
from web.core.executions import Problem, owner_of

EVENT_NAMES = tuple(m.name for m in EXECUTION_EVENTS)  # short names, in lifecycle order
EVENT_TYPES = tuple(TYPE_PREFIX + name for name in EVENT_NAMES)
MESSAGE_STATUSES = (model.PENDING, model.DELIVERED, model.FAILED)
MAX_URL = MAX_URL_LENGTH
MAX_DESCRIPTION = 500
ATTEMPTS_SHOWN = 20  # per message in the delivery log


_ready: set[str] = set()  # read-model URLs whose webhook tables this process has made sure of


def _db() -> Database:
    """The read models, with the webhook tables in them. ``migrate`` creates them; making sure
    here (once per database, idempotent) keeps a deployment migrated before webhooks existed,
    and every test deployment, working without a step to remember."""
    db = bootstrap.read_models()
    if db.url not in _ready:
        model.setup(db)
        _ready.add(db.url)
    return db


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _not_found(endpoint_id: str) -> Problem:
    return Problem("webhook_not_found", f"there is no webhook endpoint {endpoint_id}", 404)


# -- checking what a user sends -------------------------------------------------------------------


def checked_url(url: str) -> str:
    """The URL, if it is a target we may send to; else ``unsafe_url`` with the reason."""
    url = url.strip()
    try:
        check_url(url, allow_loopback_http=settings.WEBHOOKS_ALLOW_LOOPBACK_HTTP)
    except UnsafeURL as exc:
        detail = str(exc) or "this URL cannot receive webhooks"
        raise Problem("unsafe_url", detail, reason=exc.code) from None
    return url


def checked_event_types(names: Iterable[str]) -> tuple[str, ...]:
    """Full CloudEvents types for short (``Completed``) or full names, each once, in order."""
    found: list[str] = []
    for name in names:
        full = name if name.startswith(TYPE_PREFIX) else TYPE_PREFIX + name
        if full not in EVENT_TYPES:
            known = ", ".join(EVENT_NAMES)
            raise Problem("invalid_event_type", f"there is no event type {name!r} (known: {known})")
        if full not in found:
            found.append(full)
    return tuple(found)


def checked_tools(slugs: Iterable[str]) -> tuple[str, ...]:
    registry = bootstrap.tool_registry()
    found: list[str] = []
    for slug in slugs:
        try:
            registry.get(slug)
        except LookupError:
            raise Problem("unknown_tool", f"there is no tool {slug!r}") from None
        if slug not in found:
            found.append(slug)
    return tuple(found)


# -- endpoints -------------------------------------------------------------------------------------


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
    return model.list_endpoints(_db(), owner_of(user))


def get(user: Any, endpoint_id: str) -> Endpoint:
    endpoint = model.get_endpoint(_db(), str(endpoint_id), owner_of(user))
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint


def create(
    user: Any,
    *,
    url: str,
    description: str = "",
    event_types: Iterable[str] = (),
    tools: Iterable[str] = (),
    enabled: bool = True,
) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (the one time the secret is handed out)."""
    secret = new_secret()
    endpoint = model.create_endpoint(
        _db(),
        owner=owner_of(user),
        url=checked_url(url),
        secret=secret,
        description=description.strip(),
        event_types=checked_event_types(event_types),
        tools=checked_tools(tools),
        enabled=enabled,
    )
    return endpoint, secret


def update(user: Any, endpoint_id: str, **changes: Any) -> Endpoint:
    """Change any of ``url``, ``description``, ``event_types``, ``tools``, ``enabled``: checked
    as when created. Enabling clears why it was disabled and its failing streak."""
    endpoint = get(user, endpoint_id)
    if "url" in changes:
        changes["url"] = checked_url(changes["url"])
    if "description" in changes:
        changes["description"] = changes["description"].strip()
    if "event_types" in changes:
        changes["event_types"] = checked_event_types(changes["event_types"])
    if "tools" in changes:
        changes["tools"] = checked_tools(changes["tools"])
    if not changes:
        return endpoint
    return model.update_endpoint(_db(), endpoint.id, **changes)


@dataclass(frozen=True, slots=True)
class Rotated:
    secret: str
    previous_valid_until: datetime


def rotate(user: Any, endpoint_id: str) -> Rotated:
    """A new signing secret; the old one keeps signing beside it for the overlap."""
    endpoint = get(user, endpoint_id)
    overlap = timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS)
    secret = new_secret()
    rotated = model.rotate_secret(_db(), endpoint.id, secret, overlap)
    assert rotated.previous_until is not None
    return Rotated(secret, rotated.previous_until)


def delete(user: Any, endpoint_id: str) -> None:
    endpoint = get(user, endpoint_id)
    model.delete_endpoint(_db(), endpoint.id)


# -- the delivery log ------------------------------------------------------------------------------


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


def deliveries(
    user: Any, endpoint_id: str, *, status: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The endpoint's latest messages, newest first, each with its latest attempts."""
    endpoint = get(user, endpoint_id)
    db = _db()
    found = model.messages(db, endpoint.id, status=status or None, limit=limit)
    return [
        represent_message(m, model.attempts(db, endpoint.id, message_id=m.id, limit=ATTEMPTS_SHOWN))
        for m in found
    ]


def redeliver(user: Any, endpoint_id: str, message_id: str) -> dict[str, Any]:
    """Send one message again now, whatever became of it."""
    endpoint = get(user, endpoint_id)
    db = _db()
    message = model.get_message(db, str(message_id))
    if message is None or message.endpoint_id != endpoint.id:
        raise Problem("message_not_found", f"there is no message {message_id} here", 404)
    model.redeliver(db, message.id)
    message = model.get_message(db, message.id)
    assert message is not None
    return represent_message(message, model.attempts(db, endpoint.id, message_id=message.id))


def recover(user: Any, endpoint_id: str, since: datetime) -> int:
    """Send again every message that failed, made since ``since``: how many."""
    endpoint = get(user, endpoint_id)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return model.recover(_db(), endpoint.id, since.astimezone(UTC))
