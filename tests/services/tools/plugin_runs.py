"""Running a tool plugin as the runner would, on a local file: shared by the plugin tests.

``run_tool`` validates the params, runs the tool in a fresh temp dir through ``local_context`` and
collects its output and progress. ``quadrants`` draws an image with a different colour in each
quadrant, so a rotation (of an image or of a video made from it) is checked for its direction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from services.tools.base import BaseTool, Output, local_context

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


class Run:
    """One tool run: its output and the progress it reported."""

    def __init__(self) -> None:
        self.output: Output | None = None
        self.progress: list[float] = []

    @property
    def text(self) -> str:
        assert self.output is not None and self.output.text is not None
        return self.output.text

    @property
    def path(self) -> Path:
        assert self.output is not None and self.output.path is not None
        return self.output.path


def run_tool(
    tool: BaseTool,
    tmp_path: Path,
    params: dict[str, Any] | None = None,
    input_path: Path | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Run:
    """Validate params as the runner does, run the tool in a fresh temp dir, collect the result."""
    work = tmp_path / f"work-{tool.slug}"
    work.mkdir(exist_ok=True)
    content_type = "application/octet-stream"
    if input_path is not None:
        content_type = tool.accepts.get(input_path.suffix.lower(), content_type)
    ctx = local_context(tool.Params.model_validate(params or {}), work, input_path, content_type)
    result = Run()
    ctx.report_progress = lambda percent, message: result.progress.append(percent)
    ctx.is_cancelled = cancelled
    tool.run(ctx)
    result.output = ctx.output.result
    return result


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def quadrants(width: int = 40, height: int = 20, mode: str = "RGB") -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    image = Image.new(mode, (width, height))
    half_w, half_h = width // 2, height // 2
    for box, colour in (
        ((0, 0, half_w, half_h), RED),
        ((half_w, 0, width, half_h), GREEN),
        ((0, half_h, half_w, height), BLUE),
        ((half_w, half_h, width, height), YELLOW),
    ):
        image.paste(colour if mode == "RGB" else (*colour, 255), box)
    return image
