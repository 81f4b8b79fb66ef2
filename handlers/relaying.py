"""The outbox relay's wiring: its checkpoint in the read-model database, its publisher.

The checkpoint is a row of the projections' checkpoint table, so ``magictoolbox projections
status`` shows the relay's lag and last error beside the read models'. ``relay_for`` builds the
relay for a deployment with an Event Grid topic (``EVENTGRID_TOPIC_ENDPOINT``), or None without.
"""

from __future__ import annotations

from events.store import EventStore
from projections import checkpoints
from projections.db import Database
from services.eventgrid.relay import OutboxRelay, Publisher, event_grid_client

RELAY_CHECKPOINT = "relay"


class ReadModelCheckpoint:
    """A feed reader's checkpoint in the read models' ``proj_checkpoints`` table."""

    def __init__(self, database_url: str, name: str = RELAY_CHECKPOINT) -> None:
        self.database_url = database_url
        self.name = name

    def setup(self) -> None:
        with Database(self.database_url) as db:
            checkpoints.create_table(db, [self.name])

    def load(self) -> int:
        with Database(self.database_url) as db:
            stored = checkpoints.read_all(db).get(self.name)
        return stored.position if stored else 0

    def save(self, position: int) -> None:
        with Database(self.database_url) as db:
            checkpoints.advance(db, self.name, position)

    def record_error(self, error: str) -> None:
        with Database(self.database_url) as db:
            checkpoints.record_error(db, self.name, error)


def relay_for(
    store: EventStore,
    database_url: str,
    endpoint: str,
    key: str = "",
    publisher: Publisher | None = None,
) -> OutboxRelay | None:
    """The relay publishing ``store`` to the topic at ``endpoint`` (None: no topic configured)."""
    if not endpoint and publisher is None:
        return None
    checkpoint = ReadModelCheckpoint(database_url)
    checkpoint.setup()
    return OutboxRelay(
        store,
        publisher or event_grid_client(endpoint, key),
        checkpoint,
    )
