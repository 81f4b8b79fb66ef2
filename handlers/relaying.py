"""The outbox relay's wiring: its checkpoint in the read-model database, its publisher.

The checkpoint is a row of the projections' checkpoint table, so ``magictoolbox projections
status`` shows the relay's lag and last error beside the read models'. ``relay_for`` builds the
relay for a deployment with an Event Grid topic (``EVENTGRID_TOPIC_ENDPOINT``), or None without.
"""

from __future__ import annotations

import threading

from events import checkpoints
from events.database import Database
from events.store import EventStore
from services.eventgrid.relay import OutboxRelay, event_grid_client

RELAY_CHECKPOINT = "relay"


class ReadModelCheckpoint:
    """A feed reader's checkpoint in the read models' ``proj_checkpoints`` table.

    One connection, kept (opening one on PostgreSQL costs more than the write) and reopened by
    ``Database`` when it breaks; a lock, because the relay's thread and a status reader share it.
    """

    def __init__(self, database_url: str, name: str = RELAY_CHECKPOINT) -> None:
        self.database_url = database_url
        self.name = name
        self._db = Database(database_url)
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self._lock:
            checkpoints.create_table(self._db, [self.name])

    def load(self) -> int:
        with self._lock:
            stored = checkpoints.read_all(self._db).get(self.name)
        return stored.position if stored else 0

    def save(self, position: int) -> None:
        with self._lock:
            checkpoints.advance(self._db, self.name, position)

    def record_error(self, error: str) -> None:
        with self._lock:
            checkpoints.record_error(self._db, self.name, error)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def relay_for(
    store: EventStore, database_url: str, endpoint: str, key: str = ""
) -> OutboxRelay | None:
    """The relay publishing ``store`` to the topic at ``endpoint`` (None: no topic configured)."""
    if not endpoint:
        return None
    checkpoint = ReadModelCheckpoint(database_url)
    checkpoint.setup()
    return OutboxRelay(store, event_grid_client(endpoint, key), checkpoint)
