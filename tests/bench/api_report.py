"""The printed section of the API load test: one row per scenario, client count and mode.

Targets come from the issue: p95 ≤ 50 ms for an execution's status and ≤ 200 ms for a sync-tool
submit, at 50 and 200 concurrent clients, with throughput. They are printed as met or not met,
never asserted. Beside them: the latency a closed loop must show by Little's law at its
throughput (its latency is mostly the queue), and the CPU per request of the server and of this
client process, which share the machine's CPUs; errors are listed under the table with an answer.
"""

from __future__ import annotations

import os
import platform

from tests.bench.api_load import RATE_LIMIT, SEED_CLIENTS, ApiFigures, Row
from tests.bench.pipeline_bench import Latency

HEADER = (
    f"  {'scenario':<22}{'clients':>8}  {'mode':<7}{'requests':>9}{'errors':>7}{'req/s':>9}"
    f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}  {'p95 target':<16}{'N/X ms':>7}"
    f"{'server CPU':>12}{'client CPU':>12}{'idle':>6}"
)


def render(f: ApiFigures) -> str:
    plan = f.plan
    seed_rate = f.seeded / f.seed_seconds if f.seed_seconds else 0.0
    low, high = plan.think
    lines = [
        "",
        "API load: make run's one process (uvicorn serving Django over ASGI, with the projector "
        "and the Functions\nhost in it), SQLite and local blobs in a temp dir; the client is one "
        "asyncio loop in this process",
        f"  Python {platform.python_version()}, {os.cpu_count()} CPUs shared by server and "
        f"client; {_machine(f)}",
        f"  rate limits raised to {RATE_LIMIT} (user, submit, anon): this measures speed, not "
        "the limiter",
        "  HTTP/1.1, one keep-alive connection per client (tests/bench/http_client.py, wrk-like); "
        f"{f.seeded} executions seeded\n  by sync submits first ({f.seed_seconds:.1f} s, "
        f"{seed_rate:,.0f}/s from {SEED_CLIENTS} clients); each GET asks for a random one of them",
        f"  each row: {plan.warmup:g} s warm-up, then the requests started in the next "
        f"{plan.duration:g} s count. closed: a client sends\n  again as soon as it is answered; "
        f"think: it waits uniform {low:g}-{high:g} s between requests (locust's shape)",
        "  req/s and percentiles are of correct answers (GET: 200 with the requested id; POST: "
        "201, completed,\n  the right base64 inline); anything else is an error, listed below. "
        "N/X = clients / req/s: the latency\n  Little's law gives a closed loop at that "
        "throughput (its latency is the queue). CPU columns: ms of\n  CPU per request, server "
        "(/proc/<pid>/stat, all threads) and client (this process); server % of one CPU.\n  idle: "
        "the CPUs' idle share in the second before the row, after waiting (at most "
        f"{plan.settle_limit:g} s) for it to pass 85%",
        HEADER,
    ]
    lines.extend(_row(row) for row in f.rows)
    lines.extend(_errors(f))
    return "\n".join(lines)


def _row(r: Row) -> str:
    requests = max(1, r.requests)
    if r.latency_ms:
        latency = Latency(r.latency_ms)
        p95 = latency.at(0.95)
        met = "met" if p95 <= r.scenario.target_ms else "not met"
        figures = f"{latency.p50:>8.1f}{p95:>8.1f}{latency.at(0.99):>8.1f}"
        target = f"≤ {r.scenario.target_ms:g} ms {met}"
    else:
        figures, target = f"{'-':>8}{'-':>8}{'-':>8}", "no answers"
    closed = r.mode == "closed" and r.latency_ms
    little = f"{r.clients * 1000 / r.per_second:>7.1f}" if closed else f"{'-':>7}"
    server = f"{r.server_cpu * 1000 / requests:.2f} {100 * r.server_cpu / r.seconds:3.0f}%"
    idle = "-" if r.idle_at_start is None else f"{r.idle_at_start:.0f}%"
    return (
        f"  {r.scenario.label:<22}{r.clients:>8}  {r.mode:<7}{r.requests:>9,}"
        f"{sum(r.errors.values()):>7,}{r.per_second:>9,.1f}{figures}  {target:<16}{little}"
        f"{server:>12}{r.client_cpu * 1000 / requests:>12.2f}{idle:>6}"
    )


def _machine(f: ApiFigures) -> str:
    m = f.machine
    if m is None:
        return "(machine load not recorded)"
    steal = "" if m.steal_percent is None else f", CPU steal {m.steal_percent:.1f}%"
    return f"load average {m.load_before:.2f} before, {m.load_after:.2f} after{steal}"


def _errors(f: ApiFigures) -> list[str]:
    lines = []
    for r in f.rows:
        for kind, count in r.errors.most_common():
            lines.append(
                f"  error: {r.scenario.label}, {r.clients} clients, {r.mode}: {kind} x{count:,}, "
                f"e.g. {r.examples[kind]}"
            )
    stopped = "cleanly" if f.server_exit == 0 else f"with exit code {f.server_exit}"
    lines.append(
        f"  server stopped by SIGINT {stopped}; {len(f.server_errors)} ERROR/Traceback line(s) "
        "in its log" + (":" if f.server_errors else "")
    )
    lines.extend(f"    {line[:200]}" for line in f.server_errors[:10])
    up, end = f.server_fds
    lines.append(
        f"  server's open file descriptors: {up:,} once up, {end:,} after the "
        f"{f.seeded + sum(r.requests for r in f.rows):,} requests counted here (and the warm-ups)"
    )
    return lines
