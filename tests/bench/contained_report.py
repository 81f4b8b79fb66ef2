"""The printed section of the contained-runs benchmark (``tests.bench.contained_bench``).

Targets come from issue 15: a sync submit at most 5 ms slower at p50 than the tool run inline,
with a warm pool; a CPU-bound burst at least 1.7x faster on every CPU than on one worker, on 2
CPUs; every run of a SIGKILLed server completed within 30 s of its restart. They are printed as
met or SHORT, never asserted; the burst's rows say how much CPU other processes took meanwhile,
because on a shared 2-CPU machine that moves the ratio more than the pool does.
"""

from __future__ import annotations

import json

from handlers.settings import given
from tests.bench.contained_bench import BURST_ROUNDS, SYNC_PARAMS, SYNC_TOOL, ContainedFigures

SYNC_TARGET_MS = 5.0  # contained p50 at most this much above inline's, with a warm pool
SPEEDUP_TARGET = 1.7  # all CPUs' runs/s over one worker's, on 2 CPUs
RECOVERY_TARGET_S = 30.0
BUSY_ELSEWHERE = 15.0  # % of all CPU time other processes took, past which the ratio reads low


def _verdict(met: bool) -> str:
    return "met" if met else "SHORT"


def render(f: ContainedFigures) -> str:
    plan, m = f.plan, f.machine
    lines = [
        f"Contained runs (issue 15): tools in worker processes, SQLite in a temp dir, local "
        f"blobs; {f.cpus} CPUs",
    ]
    if m is not None:
        steal = "n/a" if m.steal_percent is None else f"{m.steal_percent:.1f}%"
        idle = "n/a" if m.idle_at_start is None else f"{m.idle_at_start:.0f}%"
        lines.append(
            f"  load average {m.load_before:.2f} → {m.load_after:.2f}, CPU steal {steal}, "
            f"{idle} idle at start (after {m.settled_after:.0f} s settling)"
        )
    if f.contained is not None and f.inline is not None:
        ours, base = f.contained, f.inline
        p50, p95 = ours.p50 - base.p50, ours.at(0.95) - base.at(0.95)
        lines += [
            f"  sync submit latency: {SYNC_TOOL} {json.dumps(SYNC_PARAMS)}, {plan.submits} "
            f"submits each side after {plan.warmup} warm-up,\n  alternating (ABBA), "
            "submit() → completed in the store. Inline: the same actions, runner and\n  store, "
            "the tool run in the calling thread (child.run, as before issue 15):",
            f"    contained, warm pool of {f.sync_pool_size}  {ours.line()}",
            f"    inline (baseline)          {base.line()}",
            f"    contained - inline         p50 {p50:+6.2f} ms  p95 {p95:+6.2f} ms   "
            f"target p50 ≤ +{SYNC_TARGET_MS:g} ms: {_verdict(p50 <= SYNC_TARGET_MS)}",
            f"    ({f.workers_started} worker processes started over the run; "
            f"{f.sync_not_completed} submits not completed)",
        ]
    if f.bursts:
        lines.append(
            f"  async burst of a CPU-bound tool (pure-Python loop, {f.spin_loops:,} loops ≈ "
            f"{plan.spin_ms:g} ms here),\n  {plan.burst} runs per pool in {BURST_ROUNDS} rounds "
            "(ABBA ABBA), each round's runs from a thread each through\n  ToolRunner.run "
            "(others: the share of all CPU time other processes took during the pool's rounds):"
        )
        for b in f.bursts:
            others = "n/a" if b.others_percent is None else f"{b.others_percent:.0f}%"
            lines.append(
                f"    {b.label:<26} {b.per_second:6.2f} runs/s  ({b.seconds:.2f} s; "
                f"{b.completed}/{b.runs} completed; others {others})"
            )
        one, every = f.bursts[0], f.bursts[-1]
        ratio = every.per_second / one.per_second
        target = (
            _verdict(ratio >= SPEEDUP_TARGET) if f.cpus == 2 else f"not judged ({f.cpus} CPUs here)"
        )
        lines.append(
            f"    speed-up                   {ratio:6.2f}x   target ≥ {SPEEDUP_TARGET:g}x on 2 "
            f"CPUs: {target}"
        )
        if max(b.others_percent or 0 for b in f.bursts) >= BUSY_ELSEWHERE:
            lines.append(
                "    (other processes took CPU meanwhile, ahead of the workers' nice 10: the "
                "ratio reads low;\n    rerun on an idle machine for the pool's own figure)"
            )
    r = f.recovery
    defaults = given({})
    lines.append(
        f"  recovery after SIGKILL: magictoolbox run on SQLite, default lease "
        f"({defaults.LEASE_SECONDS:g} s) and sweep ({defaults.SWEEP_SCHEDULE!r}):"
    )
    if r is not None:
        lines += [
            f"    {r.runs} test-sleep runs of {plan.recovery_sleep:g} s, {r.processing_at_kill} "
            f"processing at the SIGKILL; restarted, up in {r.up_seconds:.1f} s",
            f"    all completed after the restart  {r.seconds:6.1f} s   target ≤ "
            f"{RECOVERY_TARGET_S:g} s: {_verdict(not r.problem and r.seconds <= RECOVERY_TARGET_S)}"
            f"  ({r.completed}/{r.runs} completed)",
            f"    recovered by the lease sweep (a Failed worker_lost): {r.worker_lost}/{r.runs}",
        ]
        if r.problem:
            lines.append(f"    {r.problem}")
    return "\n".join(lines)
