"""Rebuild a projection from position 0 into fresh tables, then swap them in.

The live tables keep serving (and the projector keeps applying to them) while the fresh ones
fill. Batches are committed one by one: on PostgreSQL one long transaction would hold the event
feed's readable head back for every reader. The swap is one transaction: lock the checkpoint,
drop the live tables, rename the fresh ones and their indexes, set the checkpoint to the last
event replayed; events appended meanwhile are then applied by the projector as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from events import checkpoints
from events.database import Database
from events.store import EventStore
from projections.projection import LIVE, Projection, create_tables, drop_tables
from projections.registry import ALL

log = logging.getLogger(__name__)

FRESH = "rb_"
BATCH = 5000

# progress(position, head): called after every batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RebuildResult:
    name: str
    events: int
    position: int  # the checkpoint the rebuilt tables were swapped in at


def rebuild(
    store: EventStore,
    db_url: str,
    name: str,
    progress: Progress | None = None,
    *,
    batch_size: int = BATCH,
) -> RebuildResult:
    projection = ALL[name]
    with Database(db_url) as db:
        return rebuild_into(store, db, projection, progress, batch_size=batch_size)


def rebuild_into(
    store: EventStore,
    db: Database,
    projection: Projection,
    progress: Progress | None = None,
    *,
    batch_size: int = BATCH,
) -> RebuildResult:
    with db.transaction():
        checkpoints.create_table(db, [projection.name])
        drop_tables(db, projection, FRESH)  # left over from an interrupted rebuild
        create_tables(db, projection, FRESH)
    head = store.head_position()
    position = 0
    applied = 0
    while True:
        events = store.read_all(position, limit=batch_size, types=projection.types)
        if not events:
            break
        with db.transaction():
            projection.apply(db, events, FRESH)
        position = events[-1].position
        applied += len(events)
        if progress:
            head = max(head, position)
            progress(position, head)
    with db.transaction():
        checkpoints.locked_position(db, projection.name)
        drop_tables(db, projection, LIVE)
        _rename(db, projection)
        checkpoints.write(db, projection.name, position)
    if progress:
        progress(position, max(head, position))
    log.info("rebuilt %s from %d events up to position %d", projection.name, applied, position)
    return RebuildResult(projection.name, applied, position)


def _rename(db: Database, projection: Projection) -> None:
    for table in projection.tables:
        db.execute(f"ALTER TABLE {FRESH}{table.name} RENAME TO {LIVE}{table.name}")
        if db.dialect == "postgresql":
            # The primary key's index is named after the table; left as rb_… it would collide
            # with the next rebuild's fresh table.
            db.execute(f"ALTER INDEX {FRESH}{table.name}_pkey RENAME TO {LIVE}{table.name}_pkey")
            for index in table.indexes:
                db.execute(f"ALTER INDEX {FRESH}{index.name} RENAME TO {LIVE}{index.name}")
        else:
            # SQLite cannot rename an index: the renamed table keeps the rb_ ones, so rebuild them.
            for index in table.indexes:
                db.execute(f"DROP INDEX {FRESH}{index.name}")
                db.execute(
                    f"CREATE INDEX {LIVE}{index.name} ON {LIVE}{table.name} ({index.columns})"
                )
