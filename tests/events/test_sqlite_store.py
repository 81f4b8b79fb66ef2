"""SQLite specifics: immutability triggers and appends from several processes' connections."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from events.sqlite_store import SQLiteEventStore
from events.store import NO_STREAM
from tests.events.factories import execution_events, progress


@pytest.mark.parametrize("statement", ["UPDATE events SET type = 'x'", "DELETE FROM events"])
def test_sqlite_refuses_update_and_delete(tmp_path, statement: str) -> None:
    store = SQLiteEventStore(tmp_path / "e.sqlite3")
    store.setup()
    store.append("execution-1", progress(2), NO_STREAM)
    conn = sqlite3.connect(tmp_path / "e.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="events are immutable"):
        conn.execute(statement)
    conn.close()
    assert len(store.read_stream("execution-1")) == 2


def test_two_store_objects_on_one_file_share_streams_and_conflicts(tmp_path) -> None:
    a = SQLiteEventStore(tmp_path / "e.sqlite3")
    b = SQLiteEventStore(tmp_path / "e.sqlite3")
    a.setup()
    stream, events = execution_events()
    a.append(stream, events[:2], NO_STREAM)
    assert b.stream_version(stream) == 1
    b.append(stream, events[2:], 1)
    assert [e.version for e in a.read_stream(stream)] == [0, 1, 2, 3]
    assert b.wait_for(0, timeout=0.1)
    assert a.verify_all().ok


def test_connections_of_ended_threads_are_closed(tmp_path: Path) -> None:
    """A web server may run each request in a new thread: the store must not keep a file
    descriptor open for every thread it ever served."""
    store = SQLiteEventStore(tmp_path / "events.sqlite3")
    store.setup()

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    for _ in range(100):
        request = threading.Thread(target=store.head_position)
        request.start()
        request.join()
    assert open_fds() - before < 10  # one or two threads' worth, not a hundred
    store.close()
