"""What an owner can do with their webhook endpoints: register, change, rotate the secret,
delete, read the delivery log, redeliver, recover.

What a user sends is checked here once for every edge: the URL must be a safe target
(``ssrf.check_url``: https on a public address), event types must be in the execution catalog,
tools in the registry, and an owner has at most ``per_user`` endpoints. Another owner's
endpoint does not exist for you. Refusals are ``Problem``s with a stable code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from events.catalog import EXECUTION_EVENTS, TYPE_PREFIX
from events.database import Database
from services.problems import Problem
from services.tools.registry import ToolRegistry
from services.webhooks import endpoints as model, messages, tables
from services.webhooks.endpoints import Endpoint
from services.webhooks.messages import Attempt, Message
from services.webhooks.signing import new_secret
from services.webhooks.ssrf import MAX_URL_LENGTH, UnsafeURL, check_url

EVENT_NAMES = tuple(m.name for m in EXECUTION_EVENTS)  # short names, in lifecycle order
EVENT_TYPES = tuple(TYPE_PREFIX + name for name in EVENT_NAMES)
MESSAGE_STATUSES = (model.PENDING, model.DELIVERED, model.FAILED)
MAX_URL = MAX_URL_LENGTH
MAX_DESCRIPTION = 500
ATTEMPTS_SHOWN = 20  # per message in the delivery log
PER_USER = 25  # endpoints one owner may have (the setting's default)


@dataclass(frozen=True, slots=True)
class Rotated:
    secret: str
    previous_valid_until: datetime


Delivery = tuple[Message, list[Attempt]]  # a message with its latest attempts


class WebhookActions:
    def __init__(
        self,
        db: Callable[[], Database],
        registry: ToolRegistry,
        *,
        allow_loopback_http: bool = False,
        secret_overlap: timedelta = timedelta(hours=24),
        per_user: int = PER_USER,
    ) -> None:
        """``db`` gives this thread's connection to the read models' database; ``per_user``
        is how many endpoints one owner may have (``WEBHOOKS_PER_USER``)."""
        self._connection = db
        self.registry = registry
        self.allow_loopback_http = allow_loopback_http
        self.secret_overlap = secret_overlap
        self.per_user = per_user
        self._ready: set[str] = set()  # databases whose webhook tables this object made sure of

    def _db(self) -> Database:
        """The database, with the webhook tables in it: ``migrate`` creates them, and making
        sure here (once per database) keeps a deployment migrated before webhooks working."""
        db = self._connection()
        if db.url not in self._ready:
            tables.setup(db)
            self._ready.add(db.url)
        return db

    # -- checking what a user sends --------------------------------------------------------------

    def checked_url(self, url: str) -> str:
        """The URL, if it is a target we may send to; else ``unsafe_url`` with the reason."""
        url = url.strip()
        try:
            check_url(url, allow_loopback_http=self.allow_loopback_http)
        except UnsafeURL as exc:
            detail = str(exc) or "this URL cannot receive webhooks"
            raise Problem("unsafe_url", detail, reason=exc.code) from None
        return url

    @staticmethod
    def checked_event_types(names: Iterable[str]) -> tuple[str, ...]:
        """Full CloudEvents types for short (``Completed``) or full names, each once, in order."""
        found: list[str] = []
        for name in names:
            full = name if name.startswith(TYPE_PREFIX) else TYPE_PREFIX + name
            if full not in EVENT_TYPES:
                known = ", ".join(EVENT_NAMES)
                raise Problem(
                    "invalid_event_type", f"there is no event type {name!r} (known: {known})"
                )
            if full not in found:
                found.append(full)
        return tuple(found)

    def checked_tools(self, slugs: Iterable[str]) -> tuple[str, ...]:
        found: list[str] = []
        for slug in slugs:
            if slug not in self.registry:
                raise Problem("unknown_tool", f"there is no tool {slug!r}")
            if slug not in found:
                found.append(slug)
        return tuple(found)

    # -- endpoints -------------------------------------------------------------------------------

    def endpoints(self, owner: str) -> list[Endpoint]:
        return model.list_endpoints(self._db(), owner)

    def get(self, owner: str, endpoint_id: str) -> Endpoint:
        endpoint = model.get_endpoint(self._db(), str(endpoint_id), owner)
        if endpoint is None:
            raise Problem("webhook_not_found", f"there is no webhook endpoint {endpoint_id}", 404)
        return endpoint

    def create(
        self,
        owner: str,
        *,
        url: str,
        description: str = "",
        event_types: Iterable[str] = (),
        tools: Iterable[str] = (),
        enabled: bool = True,
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its signing secret (the one time the secret is handed out);
        ``webhook_limit_reached`` (409) when the owner has ``per_user`` already."""
        secret = new_secret()
        try:
            endpoint = model.create_endpoint(
                self._db(),
                owner=owner,
                url=self.checked_url(url),
                secret=secret,
                description=description.strip(),
                event_types=self.checked_event_types(event_types),
                tools=self.checked_tools(tools),
                enabled=enabled,
                limit=self.per_user,
            )
        except model.LimitReached as exc:
            raise Problem(
                "webhook_limit_reached",
                f"you have {exc.limit} webhook endpoints, as many as one may have: "
                "delete one to add another",
                409,
                limit=exc.limit,
            ) from None
        return endpoint, secret

    def update(self, owner: str, endpoint_id: str, **changes: Any) -> Endpoint:
        """Change any of ``url``, ``description``, ``event_types``, ``tools``, ``enabled``:
        checked as when created. Enabling clears why it was disabled and its failing streak."""
        endpoint = self.get(owner, endpoint_id)
        if "url" in changes:
            changes["url"] = self.checked_url(changes["url"])
        if "description" in changes:
            changes["description"] = changes["description"].strip()
        if "event_types" in changes:
            changes["event_types"] = self.checked_event_types(changes["event_types"])
        if "tools" in changes:
            changes["tools"] = self.checked_tools(changes["tools"])
        if not changes:
            return endpoint
        return model.update_endpoint(self._db(), endpoint.id, **changes)

    def rotate(self, owner: str, endpoint_id: str) -> Rotated:
        """A new signing secret; the old one keeps signing beside it for the overlap."""
        endpoint = self.get(owner, endpoint_id)
        secret = new_secret()
        rotated = model.rotate_secret(self._db(), endpoint.id, secret, self.secret_overlap)
        assert rotated.previous_until is not None
        return Rotated(secret, rotated.previous_until)

    def delete(self, owner: str, endpoint_id: str) -> None:
        endpoint = self.get(owner, endpoint_id)
        model.delete_endpoint(self._db(), endpoint.id)

    # -- the delivery log ------------------------------------------------------------------------

    def deliveries(
        self, owner: str, endpoint_id: str, *, status: str | None = None, limit: int = 20
    ) -> list[Delivery]:
        """The endpoint's latest messages, newest first, each with its latest attempts."""
        endpoint = self.get(owner, endpoint_id)
        db = self._db()
        found = messages.messages(db, endpoint.id, status=status or None, limit=limit)
        return [
            (m, messages.attempts(db, endpoint.id, message_id=m.id, limit=ATTEMPTS_SHOWN))
            for m in found
        ]

    def redeliver(self, owner: str, endpoint_id: str, message_id: str) -> Delivery:
        """Send one message again now, whatever became of it."""
        endpoint = self.get(owner, endpoint_id)
        db = self._db()
        message = messages.get_message(db, str(message_id))
        if message is None or message.endpoint_id != endpoint.id:
            raise Problem("message_not_found", f"there is no message {message_id} here", 404)
        messages.redeliver(db, message.id)
        message = messages.get_message(db, message.id)
        assert message is not None
        return message, messages.attempts(db, endpoint.id, message_id=message.id)

    def recover(self, owner: str, endpoint_id: str, since: datetime) -> int:
        """Send again every message that failed, made since ``since``: how many."""
        endpoint = self.get(owner, endpoint_id)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return messages.recover(self._db(), endpoint.id, since.astimezone(UTC))
