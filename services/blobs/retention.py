"""Retention of scratch blobs: ``temp`` holds files no execution event points at, so they are
swept by age alone. (Uploads and outputs go with their execution: ``services.executions.sweeper``.)
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from services.blobs.store import BlobStore

log = logging.getLogger(__name__)


def sweep_temp(store: BlobStore, now: datetime, max_age: timedelta = timedelta(hours=24)) -> int:
    """Delete the ``temp`` blobs last modified more than ``max_age`` before ``now``; the count."""
    cutoff = now - max_age
    removed = 0
    for item in store.list("temp"):
        # delete() is False when a concurrent sweep got there first: count each blob once.
        if item.modified < cutoff and store.delete("temp", item.name):
            removed += 1
    if removed:
        log.info("removed %d temp blobs older than %s", removed, max_age)
    return removed
