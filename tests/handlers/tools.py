"""Tools that exist only for tests: each exercises one part of the runner and the host.

They sit in the ``data`` category so the Functions app's ``data`` function routes them.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from services.tools.base import MB, BaseTool, OutputKind, ToolContext, TransientToolError


class NoopTool(BaseTool):
    slug = "test-noop"
    name = "No-op"
    category = "data"
    mode = "async"
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("done")


class SleepParams(BaseModel):
    seconds: float = 0.5
    # A file that marks the first attempt: the first attempt creates it, writes its worker's
    # pid in it and hangs for a minute (to be killed); later attempts find it, finish at once.
    hang_once_marker: str | None = None


class SleepTool(BaseTool):
    slug = "test-sleep"
    name = "Sleep"
    category = "data"
    mode = "async"
    Params = SleepParams
    output = OutputKind.TEXT
    timeout = timedelta(seconds=90)  # the hanging attempt is killed by the test, not timed out

    def run(self, ctx: ToolContext) -> None:
        params: SleepParams = ctx.params  # type: ignore[assignment]
        seconds = params.seconds
        if params.hang_once_marker:
            marker = Path(params.hang_once_marker)
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                seconds = 60.0
            else:
                seconds = 0.0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            ctx.progress(100 * (1 - (deadline - time.monotonic()) / max(seconds, 1e-9)))
            time.sleep(0.02)
        ctx.output.text(f"slept {seconds}s")


class FlakyParams(BaseModel):
    fail_times: int = 1
    counter: str  # a file that counts the runs (each runs in some worker process)


class FlakyTool(BaseTool):
    """Fails with a transient error the first ``fail_times`` runs for a counter, then succeeds."""

    slug = "test-flaky"
    name = "Flaky"
    category = "data"
    mode = "async"
    Params = FlakyParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: FlakyParams = ctx.params  # type: ignore[assignment]
        counter = Path(params.counter)
        count = (int(counter.read_text()) if counter.exists() else 0) + 1
        counter.write_text(str(count))
        if count <= params.fail_times:
            raise TransientToolError(f"run {count}: the backend is busy")
        ctx.output.text(f"succeeded on run {count}")


class HogParams(BaseModel):
    megabytes: int = 10


class MemoryHogTool(BaseTool):
    """Holds ``megabytes`` of memory, touching every page: past its 200 MB it is stopped."""

    slug = "test-memory-hog"
    name = "Memory hog"
    category = "data"
    mode = "sync"
    Params = HogParams
    output = OutputKind.TEXT
    max_memory = 200 * MB

    def run(self, ctx: ToolContext) -> None:
        size = ctx.params.megabytes * MB  # type: ignore[attr-defined]
        block = bytearray(size)
        for offset in range(0, size, 4096):
            block[offset] = 1
        ctx.output.text(f"held {len(block) // MB} MB")


TEST_TOOLS = (NoopTool, SleepTool, FlakyTool, MemoryHogTool)
