"""The same workload through the eventsourcing library's PostgreSQL persistence, as a reference.

This uses the recorder level: ``PostgresApplicationRecorder.insert_events`` with one
``StoredEvent`` per call, on a ``PostgresDatastore`` with one pooled connection per writer, in its
own schema. That is where ``Application.save()`` ends after its mapper has serialised an
aggregate's events; skipping the mapper matches how our store is timed (events are built before
timing). Each insert is its own transaction: ``LOCK TABLE … IN EXCLUSIVE MODE``, NOTIFY and the
INSERT, pipelined.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version as package_version
from time import perf_counter

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.conninfo import conninfo_to_dict

from tests.bench.timing import Contender
from tests.bench.workload import EXECUTION_EVENTS, Execution, build_executions

LABEL = f"eventsourcing {package_version('eventsourcing')}"
API = "PostgresApplicationRecorder.insert_events, 1 StoredEvent per call"


Stored = list[StoredEvent]  # one execution's events


def _stored(execution: Execution) -> Stored:
    return [
        StoredEvent(
            originator_id=execution.execution_id,
            originator_version=version,
            topic=event.type,
            state=event.data_json.encode(),
        )
        for version, event in enumerate(execution.events)
    ]


def _build(count: int) -> list[Stored]:
    return [_stored(e) for e in build_executions(count)]


@contextmanager
def eventsourcing_writers(url: str, schema: str, writers: int) -> Iterator[Contender[Stored]]:
    params = conninfo_to_dict(url)
    datastore = PostgresDatastore(
        dbname=str(params["dbname"]),
        host=str(params.get("host", "127.0.0.1")),
        port=str(params.get("port", "5432")),
        user=str(params.get("user", "postgres")),
        password=str(params.get("password", "")),
        schema=schema,
        pool_size=writers,
    )
    try:
        recorder = PostgresApplicationRecorder(datastore, events_table_name="stored_events")
        recorder.create_table()

        def write(_: int, executions: Sequence[Stored], deadline: float) -> int:
            written = 0
            for stored in executions:
                for event in stored:
                    recorder.insert_events([event])
                    if perf_counter() >= deadline:
                        return written
                    written += 1
            return written

        yield Contender(f"{LABEL}: recorder, 1 event/call", _build, EXECUTION_EVENTS, write)
    finally:
        datastore.close()
