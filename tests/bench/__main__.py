"""``python -m tests.bench [--quick]``: the event store against a plain table and eventsourcing.

Measures and prints events/s on PostgreSQL and on SQLite, then projections, then the async
pipeline beside a Celery + Redis baseline, then the Azure path (the outbox relay beside the
Event Grid SDK alone; Azure mode's latency beside the local host's), then user webhooks (events
fanned out to ten endpoints, beside httpx alone), then the REST API under load from concurrent
clients, then contained tool runs (a sync submit through the worker pool beside the tool run
inline, a CPU-bound burst on one worker and on all CPUs, recovery after a SIGKILLed server),
then 500 long polls from 50 users on PostgreSQL;
targets are printed beside the figures, never asserted.
Each run works in fresh schemas and files and removes them at the end, error or not. Progress goes
to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import replace

from tests.bench.api_load import FULL_API_PLAN, QUICK_API_PLAN, ApiPlan, measure_api
from tests.bench.api_report import render as render_api
from tests.bench.backends import run_postgres, run_sqlite
from tests.bench.contained_bench import (
    FULL_CONTAINED_PLAN,
    QUICK_CONTAINED_PLAN,
    measure_contained,
)
from tests.bench.contained_report import render as render_contained
from tests.bench.eventgrid_bench import (
    FULL_EVENTGRID_PLAN,
    QUICK_EVENTGRID_PLAN,
    measure_eventgrid,
    render as render_eventgrid,
)
from tests.bench.longpoll_bench import (
    FULL_LONGPOLL_PLAN,
    QUICK_LONGPOLL_PLAN,
    measure_longpolls,
    render as render_longpolls,
)
from tests.bench.pipeline_bench import FULL_PLAN, QUICK_PLAN, measure_pipeline
from tests.bench.pipeline_report import render as render_pipeline
from tests.bench.projection_bench import run_projections
from tests.bench.report import render
from tests.bench.timing import FULL, QUICK
from tests.bench.webhook_bench import (
    FULL_WEBHOOK_PLAN,
    QUICK_WEBHOOK_PLAN,
    measure_webhooks,
    render as render_webhooks,
)
from tests.bench.workload import new_event_cost_us

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def progress(step: str) -> None:
    print(f"  … {step}", file=sys.stderr, flush=True)


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
    parser.add_argument("--skip-projections", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument(
        "--only-pipeline",
        action="store_true",
        help="the async pipeline section alone (no store or projection sections)",
    )
    parser.add_argument("--skip-eventgrid", action="store_true")
    parser.add_argument(
        "--only-eventgrid", action="store_true", help="the Azure path (Event Grid) section alone"
    )
    parser.add_argument("--skip-webhooks", action="store_true")
    parser.add_argument(
        "--only-webhooks", action="store_true", help="the user webhooks section alone"
    )
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--only-api",
        action="store_true",
        help="the API load section alone (with --only-pipeline: those two sections)",
    )
    parser.add_argument("--skip-contained", action="store_true")
    parser.add_argument(
        "--only-contained",
        action="store_true",
        help="the contained tool runs section alone (SQLite; no PostgreSQL needed)",
    )
    parser.add_argument("--skip-longpolls", action="store_true")
    parser.add_argument(
        "--only-longpolls",
        action="store_true",
        help="500 concurrent long polls from 50 users on PostgreSQL, alone",
    )
    parser.add_argument(
        "--api-clients",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        help="concurrent clients of the API rows, comma-separated (default: 50,200)",
    )
    parser.add_argument("--api-duration", type=float, help="timed seconds of each API row")
    parser.add_argument("--api-warmup", type=float, help="warm-up seconds before each API row")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    eventgrid_plan = QUICK_EVENTGRID_PLAN if args.quick else FULL_EVENTGRID_PLAN
    webhook_plan = QUICK_WEBHOOK_PLAN if args.quick else FULL_WEBHOOK_PLAN
    contained_plan = QUICK_CONTAINED_PLAN if args.quick else FULL_CONTAINED_PLAN
    longpoll_plan = QUICK_LONGPOLL_PLAN if args.quick else FULL_LONGPOLL_PLAN
    if args.only_longpolls:
        figures = measure_longpolls(args.pg_url, longpoll_plan, progress)
        print(render_longpolls(figures), flush=True)
        return 0
    if args.only_contained:
        print(render_contained(measure_contained(contained_plan, progress)), flush=True)
        return 0
    if args.only_webhooks:
        print(render_webhooks(measure_webhooks(args.pg_url, webhook_plan, progress)), flush=True)
        return 0
    if args.only_eventgrid:
        figures = measure_eventgrid(args.pg_url, eventgrid_plan, progress)
        print(render_eventgrid(figures, eventgrid_plan), flush=True)
        return 0
    if args.only_pipeline or args.only_api:
        if args.only_pipeline:
            print(render_pipeline(measure_pipeline(args.pg_url, plan, progress), plan), flush=True)
        if args.only_api:
            print(render_api(measure_api(_api_plan(args), progress)), flush=True)
        return 0

    print(
        f"MagicToolbox event store benchmark, {'quick' if args.quick else 'full'} run: "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start (other work on the machine moves the figures).\n"
        "Single-event appends (baseline, eventsourcing, store) are timed in interleaved "
        f"rounds: each is warmed\nup ({budget.warmup_seconds:g} s), then {budget.rounds} rounds "
        f"each run every contender once for {budget.round_seconds:g} s with the same writers, in "
        "an\norder that rotates from round to round. A row is total events / total timed "
        "seconds over its rounds;\nthe ratios are of those totals, with the median and range "
        "of the same-round ratios below them.\nBatch append is timed the same way, one writer, "
        "against a baseline of 100-row INSERTs, one\ntransaction each; its ratio is on the store "
        "row. read_all reads the seeded feed once.\n"
        "Workload: executions of 4 events (Submitted, Uploaded, Processing, Completed), each "
        "event its own\nappend/INSERT and transaction; writers are threads. Batch: 100-event "
        "executions (Submitted,\nUploaded, Processing, 96 Progress, Completed), one append each. "
        "Events are built with new_event\nbefore timing starts (the caller's work: "
        f"{new_event_cost_us():.0f} µs/event, not counted). Targets are printed, not asserted.",
        flush=True,
    )
    if not args.skip_postgres:
        print(render(run_postgres(args.pg_url, budget, progress)), flush=True)
    if not args.skip_sqlite:
        print(render(run_sqlite(budget, progress)), flush=True)
    if not args.skip_postgres and not args.skip_projections:
        print(run_projections(args.pg_url, args.quick, progress), flush=True)
    if not args.skip_postgres and not args.skip_pipeline:
        print(render_pipeline(measure_pipeline(args.pg_url, plan, progress), plan), flush=True)
    if not args.skip_postgres and not args.skip_eventgrid:
        figures = measure_eventgrid(args.pg_url, eventgrid_plan, progress)
        print(render_eventgrid(figures, eventgrid_plan), flush=True)
    if not args.skip_postgres and not args.skip_webhooks:
        print(render_webhooks(measure_webhooks(args.pg_url, webhook_plan, progress)), flush=True)
    if not args.skip_api:
        print(render_api(measure_api(_api_plan(args), progress)), flush=True)
    if not args.skip_contained:
        print(render_contained(measure_contained(contained_plan, progress)), flush=True)
    if not args.skip_postgres and not args.skip_longpolls:
        figures = measure_longpolls(args.pg_url, longpoll_plan, progress)
        print(render_longpolls(figures), flush=True)
    return 0


def _api_plan(args: argparse.Namespace) -> ApiPlan:
    plan = QUICK_API_PLAN if args.quick else FULL_API_PLAN
    given = {"clients": args.api_clients, "duration": args.api_duration, "warmup": args.api_warmup}
    return replace(plan, **{k: v for k, v in given.items() if v is not None})


if __name__ == "__main__":
    sys.exit(main())
