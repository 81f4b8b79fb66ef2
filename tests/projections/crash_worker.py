"""Run by test_projector in a subprocess: a projector that dies (``os._exit``) after applying a
batch of tool_stats rows, before that batch's checkpoint is written and committed.

usage: python -m tests.projections.crash_worker STORE_URL DB_URL BATCH_SIZE CRASH_AT_BATCH
"""

from __future__ import annotations

import os
import sys

from events.database import Database
from events.envelope import RecordedEvent
from events.opening import open_store
from projections.projector import Projector

CRASH_EXIT = 17


class CrashingProjector(Projector):
    crash_at = 0
    batches = 0

    def _write_checkpoint(
        self, name: str, position: int, events: list[RecordedEvent], db: Database
    ) -> None:
        if name == "tool_stats":
            self.batches += 1
            if self.batches == self.crash_at:
                sys.stdout.flush()
                os._exit(CRASH_EXIT)  # no rollback, no cleanup: as if the power went
        super()._write_checkpoint(name, position, events, db)


def main() -> None:
    store_url, db_url, batch_size, crash_at = sys.argv[1:5]
    store = open_store(store_url)
    projector = CrashingProjector(store, db_url, batch_size=int(batch_size))
    projector.crash_at = int(crash_at)
    projector.setup()
    while projector.run_once():
        pass
    sys.exit(0)  # never reached when the crash happens


if __name__ == "__main__":
    main()
