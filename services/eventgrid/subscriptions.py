"""The emulator's configuration: one topic, its subscriptions and where dead letters go.

A JSON file whose keys mirror ARM's (``topic``, ``deadLetter``, ``subscriptions`` with
``endpoint``, ``eventDeliverySchema``, ``filter``, ``retryPolicy``, ``deliveryAttributeMappings``,
``maxEventsPerBatch``), so a subscription reads like its Bicep twin; ``run-azure`` writes one
(``var/eventgrid-local.json``). Any string may hold ``${NAME}`` or ``${NAME:-default}`` from the
environment. What Event Grid would refuse when the topic or a subscription is created is refused
here with ``ConfigError``, before anything listens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from services.eventgrid.filters import Filter, FilterError
from services.eventgrid.protocol import CLOUDEVENTS, EVENTGRID

SCHEMAS = (CLOUDEVENTS, EVENTGRID)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")  # ARM's rule for topic and subscription names


class ConfigError(ValueError):
    """A configuration the emulator cannot run, with the reason in words."""


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    key: str
    input_schema: str = CLOUDEVENTS

    @property
    def resource_id(self) -> str:
        """What Event Grid puts in an Event Grid schema event's ``topic``."""
        return (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator"
            f"/providers/Microsoft.EventGrid/topics/{self.name}"
        )


@dataclass(frozen=True, slots=True)
class DeadLetterDestination:
    storage: str  # an Azure Storage connection string, or a local folder
    container: str = "deadletters"


@dataclass(frozen=True, slots=True)
class DeliveryAttribute:
    """A header on every delivery: a fixed value, or one taken from the event (``Dynamic``)."""

    name: str
    value: str = ""
    source_field: str = ""  # Dynamic: a key such as data.tool

    @property
    def dynamic(self) -> bool:
        return bool(self.source_field)


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    endpoint: str
    delivery_schema: str = CLOUDEVENTS
    filter: Filter = field(default_factory=Filter)
    max_delivery_attempts: int = 30
    event_ttl_minutes: float = 1440.0
    attributes: tuple[DeliveryAttribute, ...] = ()
    max_events_per_batch: int = 1
    preferred_batch_kb: int = 64
    dead_letter: DeadLetterDestination | None = None


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    topic: Topic
    subscriptions: tuple[Subscription, ...]

    def with_key(self, key: str) -> EmulatorConfig:
        topic = Topic(self.topic.name, key, self.topic.input_schema)
        return EmulatorConfig(topic, self.subscriptions)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> EmulatorConfig:
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    return parse_config(doc, os.environ if environ is None else environ)


def parse_config(doc: Any, environ: Mapping[str, str] | None = None) -> EmulatorConfig:
    doc = substitute(doc, os.environ if environ is None else environ)
    if not isinstance(doc, dict):
        raise ConfigError("the configuration must be a JSON object")
    topic = _topic(_object(doc, "topic"))
    destination = _destination(doc.get("deadLetter"), "deadLetter")
    items = doc.get("subscriptions")
    if not isinstance(items, list):
        raise ConfigError("subscriptions must be a list")
    subscriptions = tuple(_subscription(item, topic, destination) for item in items)
    names = [s.name.casefold() for s in subscriptions]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"two subscriptions are named {duplicate!r}")
    return EmulatorConfig(topic, subscriptions)


def substitute(value: Any, environ: Mapping[str, str]) -> Any:
    """``value`` with every ``${NAME}`` in its strings replaced from ``environ``."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"${{{name}}} is used in the configuration but not set")

        return _VARIABLE.sub(replace, value)
    if isinstance(value, list):
        return [substitute(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, environ) for key, item in value.items()}
    return value


def _object(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return value


def _string(doc: Mapping[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = doc.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {name} must be a non-empty string")
    return value


def _number(doc: Mapping[str, Any], name: str, where: str, default: float, low: float, high: float):
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{where}: {name} must be a number from {low:g} to {high:g}")
    return value


def _schema(value: Any, where: str) -> str:
    if value not in SCHEMAS:
        raise ConfigError(f"{where} must be one of {', '.join(SCHEMAS)}, not {value!r}")
    return value


def _topic(doc: dict[str, Any]) -> Topic:
    name = _string(doc, "name", "topic")
    if not _NAME.match(name):
        raise ConfigError(f"topic name {name!r}: 3 to 64 letters, digits and hyphens")
    schema = _schema(doc.get("inputSchema", CLOUDEVENTS), "topic.inputSchema")
    return Topic(name, _string(doc, "key", "topic"), schema)


def _destination(doc: Any, where: str) -> DeadLetterDestination | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where} must be a JSON object")
    container = _string(doc, "container", where, "deadletters")
    return DeadLetterDestination(_string(doc, "storage", where), container)


def _subscription(
    doc: Any, topic: Topic, destination: DeadLetterDestination | None
) -> Subscription:
    if not isinstance(doc, dict):
        raise ConfigError("each subscription must be a JSON object")
    name = _string(doc, "name", "subscription")
    where = f"subscription {name}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a name is 3 to 64 letters, digits and hyphens")
    endpoint = _string(doc, "endpoint", where)
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
        raise ConfigError(f"{where}: endpoint must be an http(s) URL, not {endpoint!r}")
    schema = _schema(doc.get("eventDeliverySchema", topic.input_schema), f"{where}: schema")
    if topic.input_schema == CLOUDEVENTS and schema != CLOUDEVENTS:
        # Event Grid itself refuses this pair: a CloudEvent has no dataVersion or topic to map.
        raise ConfigError(f"{where}: a CloudEvents topic delivers only {CLOUDEVENTS}")
    policy = doc.get("retryPolicy") or {}
    if not isinstance(policy, dict):
        raise ConfigError(f"{where}: retryPolicy must be a JSON object")
    attempts = _number(policy, "maxDeliveryAttempts", where, 30, 1, 30)
    if not isinstance(attempts, int):
        raise ConfigError(f"{where}: maxDeliveryAttempts must be a whole number")
    ttl = _number(policy, "eventTimeToLiveInMinutes", where, 1440, 0, 1440)
    if ttl <= 0:
        raise ConfigError(f"{where}: eventTimeToLiveInMinutes must be above 0")
    batch = _number(doc, "maxEventsPerBatch", where, 1, 1, 5000)
    preferred = _number(doc, "preferredBatchSizeInKilobytes", where, 64, 1, 1024)
    try:
        event_filter = Filter.from_config(doc.get("filter"))
    except FilterError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Subscription(
        name=name,
        endpoint=endpoint,
        delivery_schema=schema,
        filter=event_filter,
        max_delivery_attempts=attempts,
        event_ttl_minutes=float(ttl),
        attributes=_attributes(doc.get("deliveryAttributeMappings") or [], where),
        max_events_per_batch=int(batch),
        preferred_batch_kb=int(preferred),
        dead_letter=_subscription_dead_letter(doc.get("deadLetter", False), destination, where),
    )


def _subscription_dead_letter(
    value: Any, destination: DeadLetterDestination | None, where: str
) -> DeadLetterDestination | None:
    if value is False or value is None:
        return None
    if value is True:
        if destination is None:
            raise ConfigError(f"{where}: deadLetter is on but the file has no deadLetter storage")
        return destination
    return _destination(value, f"{where}: deadLetter")


def _attributes(items: Any, where: str) -> tuple[DeliveryAttribute, ...]:
    if not isinstance(items, list) or len(items) > 10:
        raise ConfigError(f"{where}: deliveryAttributeMappings is a list of at most 10")
    attributes = []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each delivery attribute must be a JSON object")
        name = _string(item, "name", f"{where}: delivery attribute")
        if name.lower().startswith("aeg-"):
            raise ConfigError(f"{where}: {name}: the aeg- headers are Event Grid's own")
        properties = item.get("properties") or {}
        kind = item.get("type", "Static")
        if kind == "Static" and isinstance(properties.get("value"), str):
            attributes.append(DeliveryAttribute(name, value=properties["value"]))
        elif kind == "Dynamic" and isinstance(properties.get("sourceField"), str):
            attributes.append(DeliveryAttribute(name, source_field=properties["sourceField"]))
        else:
            raise ConfigError(
                f"{where}: {name}: a Static attribute needs properties.value, "
                "a Dynamic one properties.sourceField"
            )
    return tuple(attributes)


def delivery_event(event: Mapping[str, Any], topic: Topic, schema: str) -> dict[str, Any]:
    """The event as this subscription receives it. Event Grid schema events are turned into
    CloudEvents as Event Grid maps them; CloudEvents go out as they came in."""
    if topic.input_schema == CLOUDEVENTS or schema == EVENTGRID:
        return dict(event)
    converted = {
        "specversion": "1.0",
        "id": event["id"],
        "source": event.get("topic") or topic.resource_id,
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }
    if event.get("dataVersion"):
        converted["dataversion"] = event["dataVersion"]
    return converted
