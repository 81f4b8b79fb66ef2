"""``python -m tests.bench [--quick]``: the event store against a plain table and eventsourcing.

Measures and prints events/s on PostgreSQL and on SQLite; targets are printed beside the figures,
never asserted. Each run works in fresh schemas and files and removes them at the end, error or not.
Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
from importlib.metadata import version as package_version

import psycopg

from events.sqlite_store import SYNCHRONOUS
from tests.bench.baseline import postgres_baseline, sqlite_baseline
from tests.bench.places import PostgresSchemas, SQLiteFiles
from tests.bench.report import Section, render
from tests.bench.store_bench import WRITER_COUNTS, run_store_bench
from tests.bench.timing import FULL, QUICK, Budget
from tests.bench.workload import new_event_cost_us

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def progress(step: str) -> None:
    print(f"  … {step}", file=sys.stderr, flush=True)


def run_postgres(url: str, budget: Budget) -> Section:
    with psycopg.connect(url) as conn:
        server, fsync, sync_commit = (
            conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit")
        )
    section = Section(
        f"PostgreSQL {server.split()[0]} (fsync={fsync}, synchronous_commit={sync_commit}; "
        f"psycopg {package_version('psycopg')})"
    )
    with PostgresSchemas(url) as schemas:
        for writers in WRITER_COUNTS:
            progress(f"PostgreSQL baseline, {writers} writer(s)")
            rate = postgres_baseline(url, schemas.new(f"baseline{writers}"), writers, budget)
            section.baseline[writers] = rate
            section.add("baseline: INSERT + commit, psycopg 3", writers, rate)
        try:
            from tests.bench.library import API, LABEL, eventsourcing_writers
        except ImportError as exc:
            section.notes.append(f"eventsourcing skipped ({exc}); install the bench extra")
        else:
            for writers in WRITER_COUNTS:
                progress(f"PostgreSQL {LABEL}, {writers} writer(s)")
                rate = eventsourcing_writers(url, schemas.new(f"es{writers}"), writers, budget)
                section.library[writers] = rate
                section.add(f"{LABEL}: recorder, 1 event/call", writers, rate)
            section.notes.append(f"{LABEL} used via {API}")
        figures = run_store_bench(schemas.open_store, budget, lambda s: progress(f"PostgreSQL {s}"))
        section.add_store(figures)
    return section


def run_sqlite(budget: Budget) -> Section:
    section = Section(
        f"SQLite {sqlite3.sqlite_version} (WAL, synchronous={SYNCHRONOUS} as in "
        "events/sqlite_store.py; one writer at a time)",
        serialized_writers=True,
    )
    with SQLiteFiles() as files:
        for writers in WRITER_COUNTS:
            progress(f"SQLite baseline, {writers} writer(s)")
            path = files.path(f"baseline{writers}")
            rate = sqlite_baseline(path, SYNCHRONOUS, writers, budget)
            section.baseline[writers] = rate
            section.add("baseline: BEGIN IMMEDIATE + INSERT + COMMIT", writers, rate)
        figures = run_store_bench(files.open_store, budget, lambda s: progress(f"SQLite {s}"))
        section.add_store(figures)
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for smoke testing")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("MAGICTOOLBOX_TEST_PG", DEFAULT_PG),
        help="PostgreSQL database to create throwaway schemas in (default: %(default)s)",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL

    print(
        f"MagicToolbox event store benchmark, {'quick' if args.quick else 'full'} run: "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start;\neach figure is {budget.seconds:g} s timed after "
        f"{budget.warmup_seconds:g} s warm-up (other work on the machine moves the figures).\n"
        "Workload: executions of 4 events (Submitted, Uploaded, Processing, Completed), each "
        "event its own\nappend/INSERT and transaction; writers are threads. Batch: 100-event "
        "executions (Submitted,\nUploaded, Processing, 96 Progress, Completed), one append each. "
        "Events are built with new_event\nbefore timing starts (the caller's work: "
        f"{new_event_cost_us():.0f} µs/event, not counted). Targets are printed, not asserted.",
        flush=True,
    )
    if not args.skip_postgres:
        print(render(run_postgres(args.pg_url, budget)), flush=True)
    if not args.skip_sqlite:
        print(render(run_sqlite(budget)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
