"""Retention of blobs: sweeping stale scratch files, and removing an expired execution's files.

``temp`` holds scratch files with no execution event pointing at them, so they are swept by age
alone. Uploads and outputs go with their execution: ``services.executions.sweeper.sweep_retention``
decides when an execution expires and calls ``remove_execution_blobs`` to delete its files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from events.catalog import BlobRef
from services.blobs.store import BlobStore
from services.executions.decider import ExecutionState

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


def remove_execution_blobs(store: BlobStore) -> Callable[[ExecutionState], list[BlobRef]]:
    """The ``remove_blobs`` callback of ``sweep_retention``: deletes the upload and the output.

    It returns every ref of the execution, deleted now or gone already: an earlier sweep may have
    removed the files and died before recording ``Expired``, and the event (recorded once per
    execution) should still say which files went.
    """

    def remove(state: ExecutionState) -> list[BlobRef]:
        refs = [ref for ref in (state.upload, state.output) if ref is not None]
        for ref in refs:
            store.delete(ref.container, ref.name)
        return refs

    return remove
