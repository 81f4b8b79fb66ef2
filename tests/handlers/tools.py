"""Tools that exist only for tests: each exercises one part of the runner and the host.

They sit in the ``data`` category so the Functions app's ``data`` function routes them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from services.tools.base import BaseTool, OutputKind, ToolContext, TransientToolError


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
    # A file that marks the first attempt: the first attempt creates it and hangs for a minute
    # (to be killed), later attempts find it and finish at once.
    hang_once_marker: str | None = None


class SleepTool(BaseTool):
    slug = "test-sleep"
    name = "Sleep"
    category = "data"
    mode = "async"
    Params = SleepParams
    output = OutputKind.TEXT
    timeout = timedelta(seconds=1)

    def run(self, ctx: ToolContext) -> None:
        params: SleepParams = ctx.params  # type: ignore[assignment]
        seconds = params.seconds
        if params.hang_once_marker:
            marker = Path(params.hang_once_marker)
            if not marker.exists():
                marker.write_text("first attempt")
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
    key: str


class FlakyTool(BaseTool):
    """Fails with a transient error the first ``fail_times`` runs for a key, then succeeds."""

    slug = "test-flaky"
    name = "Flaky"
    category = "data"
    mode = "async"
    Params = FlakyParams
    output = OutputKind.TEXT
    runs: dict[str, int] = {}  # noqa: RUF012 - shared on purpose: counts runs across attempts

    def run(self, ctx: ToolContext) -> None:
        params: FlakyParams = ctx.params  # type: ignore[assignment]
        count = self.runs.get(params.key, 0) + 1
        self.runs[params.key] = count
        if count <= params.fail_times:
            raise TransientToolError(f"run {count}: the backend is busy")
        ctx.output.text(f"succeeded on run {count}")


TEST_TOOLS = (NoopTool, SleepTool, FlakyTool)
