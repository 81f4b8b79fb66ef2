"""Where the emulator puts the events it gave up on: a blob container, or a local folder.

Event Grid writes each dead-lettered delivery as one JSON blob holding an array of events,
named ``<topic>/<subscription>/<yyyy>/<mm>/<dd>/<hh>/<uuid>.json`` (UTC). A connection string
(Azurite's, or an account's) writes to that container, created when missing; anything else is
a folder, and the blob names become paths under ``<folder>/<container>/``.

Each event keeps its fields and gains Event Grid's ``deadLetterReason``, ``deliveryAttempts``,
``lastDeliveryOutcome``, ``lastHttpStatusCode``, ``publishTime`` and ``lastDeliveryAttemptTime``;
in lower case for CloudEvents (``deadletterreason``…), whose attribute names are lower case, as
Event Grid writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from services.eventgrid.handshakes import event_time
from services.eventgrid.protocol import CLOUDEVENTS
from services.eventgrid.subscriptions import DeadLetterDestination


def blob_name(topic: str, subscription: str, at: datetime | None = None) -> str:
    at = (at or datetime.now(UTC)).astimezone(UTC)
    return f"{topic}/{subscription}/{at:%Y/%m/%d/%H}/{uuid.uuid4()}.json"


def dead_letter_record(
    event: dict[str, Any],
    schema: str,
    *,
    reason: str,
    attempts: int,
    outcome: str | None,
    status: int | None,
    published: datetime,
    last_attempt: datetime | None,
) -> dict[str, Any]:
    """The event as Event Grid dead-letters it (``outcome``/``status``: of the last attempt)."""
    fields = {
        "deadLetterReason": reason,
        "deliveryAttempts": attempts,
        "lastDeliveryOutcome": outcome,
        "lastHttpStatusCode": status,
        "publishTime": event_time(published),
        "lastDeliveryAttemptTime": event_time(last_attempt) if last_attempt else None,
    }
    if schema == CLOUDEVENTS:
        fields = {name.lower(): value for name, value in fields.items()}
    return {**event, **fields}


def is_connection_string(storage: str) -> bool:
    return "=" in storage and ";" in storage


class DeadLetterWriter:
    """Writes dead-letter blobs to one destination (blocking: call it from a worker thread)."""

    def __init__(self, destination: DeadLetterDestination) -> None:
        self.destination = destination
        self._container: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = "blob storage" if is_connection_string(self.destination.storage) else "folder"
        return f"<DeadLetterWriter {where} container={self.destination.container}>"

    def write(self, name: str, records: list[dict[str, Any]]) -> str:
        """Store ``records`` as ``name``; returns where it went, for the log."""
        body = orjson.dumps(records, option=orjson.OPT_INDENT_2)
        if is_connection_string(self.destination.storage):
            self._blob_container().upload_blob(name, body, overwrite=False)
            return f"{self.destination.container}/{name}"
        path = Path(self.destination.storage) / self.destination.container / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(body)
        temporary.replace(path)  # a reader never sees half a file
        return str(path)

    async def write_soon(self, name: str, records: list[dict[str, Any]], tries: int = 3) -> str:
        """``write`` from a worker thread, tried again after a pause when it fails (the last
        failure is raised)."""
        for attempt in range(1, tries + 1):
            try:
                return await asyncio.to_thread(self.write, name, records)
            except Exception:
                if attempt == tries:
                    raise
                await asyncio.sleep(attempt)
        raise AssertionError("unreachable")

    def _blob_container(self) -> Any:
        with self._lock:
            if self._container is None:
                service = BlobServiceClient.from_connection_string(self.destination.storage)
                container = service.get_container_client(self.destination.container)
                with contextlib.suppress(ResourceExistsError):
                    container.create_container()
                self._container = container
            return self._container
