"""A CPU-bound tool for the contained-runs benchmark: a pure-Python loop, nothing else.

It lives in a module of its own that imports next to nothing, because a worker process imports
it to unpickle its job: the bench's own modules (servers, clients, reports) would be seconds of
imports the first run pays for, and this measures the pool, not an import.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from services.tools.base import BaseTool, OutputKind, ToolContext


class SpinParams(BaseModel):
    loops: int = Field(1_000_000, ge=1, le=1_000_000_000)


class BenchSpin(BaseTool):
    slug = "bench-spin"
    name = "Bench spin"
    category = "data"
    mode = "async"
    Params = SpinParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text(str(spin(ctx.params.loops)))  # type: ignore[attr-defined]


def spin(loops: int) -> int:
    """Pure-Python arithmetic: holds the GIL and one core for as long as it loops."""
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1_000_003
    return total


def loops_for(milliseconds: float) -> int:
    """How many loops take about ``milliseconds`` here (in this process, now)."""
    probe = 200_000
    spin(probe // 10)  # warm
    started = time.perf_counter()
    spin(probe)
    took = time.perf_counter() - started
    return max(1, round(probe * milliseconds / 1000 / took))
