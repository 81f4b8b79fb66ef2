"""One section per backend: what is measured on PostgreSQL and on SQLite, in fresh places.

For each writer count the single-event contenders (the plain-table baseline, eventsourcing where it
runs, our store) are opened side by side in fresh schemas or files, timed in interleaved rounds by
``timing.interleave`` and closed again. The store's batch append is then timed the same way against
the batch baseline (one writer each), and the catch-up run follows on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from importlib.metadata import version as package_version
from typing import Any

import psycopg

from events.sqlite_store import SYNCHRONOUS
from tests.bench.baseline import (
    postgres_baseline,
    postgres_batch_baseline,
    sqlite_baseline,
    sqlite_batch_baseline,
)
from tests.bench.places import PostgresSchemas, SQLiteFiles
from tests.bench.report import Section
from tests.bench.store_bench import (
    WRITER_COUNTS,
    run_catch_up,
    store_appends,
    store_batch_appends,
)
from tests.bench.timing import Budget, Contender, Rounds, interleave

Progress = Callable[[str], None]
# opener(writers) -> the contender, to be entered for one writer count's rounds and left after.
Opener = Callable[[int], AbstractContextManager[Contender[Any]]]


def compare(
    section: Section,
    baseline: Opener,
    library: Opener | None,
    store: Opener,
    budget: Budget,
    progress: Progress,
) -> None:
    """Time the contenders in interleaved rounds at each writer count; rows in contender order."""
    openers = {"baseline": baseline, "library": library, "store": store}
    results: dict[str, dict[int, Rounds]] = {role: {} for role, o in openers.items() if o}
    labels: dict[str, str] = {}
    for writers in WRITER_COUNTS:
        with ExitStack() as stack:
            contenders = {
                role: stack.enter_context(opener(writers))
                for role, opener in openers.items()
                if opener
            }
            names = ", ".join(c.label.split(":")[0] for c in contenders.values())
            progress(
                f"{writers} writer(s), {budget.rounds} interleaved rounds of "
                f"{budget.round_seconds:g} s: {names}"
            )
            rounds = interleave(writers, list(contenders.values()), budget)
        for (role, contender), measured in zip(contenders.items(), rounds, strict=True):
            labels[role] = contender.label
            results[role][writers] = measured
    for role, by_writers in results.items():
        for writers, measured in by_writers.items():
            section.add_rounds(labels[role], writers, measured)
    section.baseline = results["baseline"]
    section.library = results.get("library", {})
    section.store = results["store"]


def compare_batch(
    section: Section,
    baseline: AbstractContextManager[Contender[Any]],
    store: AbstractContextManager[Contender[Any]],
    budget: Budget,
    progress: Progress,
) -> None:
    """Time the batch baseline and the store's batch append in interleaved rounds, one writer."""
    with baseline as base, store as ours:
        progress(
            f"batch append, {budget.rounds} interleaved rounds of {budget.round_seconds:g} s: "
            "baseline, store"
        )
        base_rounds, store_rounds = interleave(1, [base, ours], budget)
    section.add_batch(base.label, base_rounds, ours.label, store_rounds)


def run_postgres(url: str, budget: Budget, progress: Progress = lambda step: None) -> Section:
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
        library: Opener | None
        try:
            from tests.bench.library import API, LABEL, eventsourcing_writers
        except ImportError as exc:
            library = None
            section.notes.append(f"eventsourcing skipped ({exc}); install the bench extra")
        else:
            library = lambda n: eventsourcing_writers(url, schemas.new(f"es{n}"), n)  # noqa: E731
            section.notes.append(f"{LABEL} used via {API}")
        compare(
            section,
            lambda n: postgres_baseline(url, schemas.new(f"baseline{n}"), n),
            library,
            lambda n: store_appends(schemas.open_store, f"store{n}"),
            budget,
            lambda step: progress(f"PostgreSQL {step}"),
        )
        compare_batch(
            section,
            postgres_batch_baseline(url, schemas.new("baseline_batch")),
            store_batch_appends(schemas.open_store, "batch"),
            budget,
            lambda step: progress(f"PostgreSQL {step}"),
        )
        section.notes.append(
            "batch baseline: one autocommit INSERT … SELECT FROM unnest(binary arrays) per "
            "100 events, one round trip (as the store's batch append)"
        )
        caught_up = run_catch_up(schemas.open_store, budget, lambda s: progress(f"PostgreSQL {s}"))
        section.add_catch_up(caught_up)
    return section


def run_sqlite(budget: Budget, progress: Progress = lambda step: None) -> Section:
    section = Section(
        f"SQLite {sqlite3.sqlite_version} (WAL, synchronous={SYNCHRONOUS} as in "
        "events/sqlite_store.py; one writer at a time)",
        serialized_writers=True,
    )
    with SQLiteFiles() as files:
        compare(
            section,
            lambda n: sqlite_baseline(files.path(f"baseline{n}"), SYNCHRONOUS, n),
            None,
            lambda n: store_appends(files.open_store, f"store{n}"),
            budget,
            lambda step: progress(f"SQLite {step}"),
        )
        compare_batch(
            section,
            sqlite_batch_baseline(files.path("baseline_batch"), SYNCHRONOUS),
            store_batch_appends(files.open_store, "batch"),
            budget,
            lambda step: progress(f"SQLite {step}"),
        )
        section.notes.append(
            "batch baseline: BEGIN IMMEDIATE + executemany of 100 rows + COMMIT per 100 events"
        )
        section.add_catch_up(
            run_catch_up(files.open_store, budget, lambda s: progress(f"SQLite {s}"))
        )
    return section
