"""How much memory a large upload costs ``submit``: measured in a fresh process, on disk.

``measure_in_subprocess`` runs this module as ``python -m tests.bench.upload_memory SIZE_MB DIR``
so nothing the bench did before weighs on the process's RSS. The child builds a local blob store
and a SQLite event store in DIR, makes a one-second MP4 with imageio-ffmpeg's ffmpeg for a real
header, and submits a ``video-rotate`` execution (a stand-in tool with the same limits if that
plugin is missing) whose upload is that header followed by 1 MiB chunks of zeros up to SIZE_MB.
It prints one JSON line: the peak RSS during ``submit`` minus the RSS before it, and the
tracemalloc peak.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from services.tools.base import MB, BaseTool, ToolContext

TARGET_MB = 64
MIN_FREE = 2 * 1024 * MB
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class MemoryFigures:
    tool: str
    size_mb: float
    seconds: float
    rss_growth_mb: float
    tracemalloc_peak_mb: float


class BenchUpload(BaseTool):
    """Stands in for video-rotate when that plugin is not there: same accepts and limit."""

    slug = "bench-upload"
    name = "Bench upload"
    category = "video"
    mode = "async"
    accepts: ClassVar[dict[str, str]] = {".mp4": "video/mp4"}
    max_size = 500 * MB

    def run(self, ctx: ToolContext) -> None:
        ctx.output.text("ok")


def measure_in_subprocess(size_mb: int) -> tuple[MemoryFigures | None, str]:
    """(figures, "") or (None, why it was skipped); the files are removed either way."""
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < MIN_FREE:
        return None, f"only {free / MB:,.0f} MB free in {tempfile.gettempdir()}, 2 GB needed"
    with tempfile.TemporaryDirectory(prefix="mt-bench-upload-") as tmp:
        child = subprocess.run(
            [sys.executable, "-m", "tests.bench.upload_memory", str(size_mb), tmp],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        return None, f"the measuring process failed ({child.returncode}): {child.stderr[-800:]}"
    return MemoryFigures(**json.loads(lines[-1])), ""


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (VmRSS: now, VmHWM: peak), None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Start VmHWM afresh from the RSS now (Linux: ``5`` into clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _tiny_mp4(directory: Path) -> bytes:
    import imageio_ffmpeg

    target = directory / "tiny.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x32:rate=10",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    data = target.read_bytes()
    target.unlink()
    return data


def _chunks(head: bytes, total: int) -> Iterator[bytes]:
    """The header, then zeros: a new, written 1 MiB buffer each time, as a socket read gives."""
    yield head
    left = total - len(head)
    while left > 0:
        yield b"\0" * min(MB, left)
        left -= MB


def _measure(size_mb: int, directory: Path) -> MemoryFigures:
    from events.opening import open_store
    from services.blobs.local import LocalBlobStore
    from services.executions.actions import ExecutionActions, Upload
    from services.executions.service import ExecutionService
    from services.tools.registry import ToolRegistry, discover

    head = _tiny_mp4(directory)
    registry = discover()
    if "video-rotate" not in registry:
        registry = ToolRegistry([BenchUpload()])
    tool = "video-rotate" if "video-rotate" in registry else "bench-upload"
    blobs = LocalBlobStore(directory / "blobs", signing_key=b"k")
    blobs.setup()
    store = open_store(f"sqlite:///{directory / 'events.sqlite3'}")
    store.setup()
    service = ExecutionService(store)
    total = size_mb * MB
    # ru_maxrss alone misleads here: Linux carries the peak of the process that exec'd us (the
    # bench, forked) into the new program's ru_maxrss. VmHWM, reset just before, is ours alone.
    peak_now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    before = _status_kib("VmRSS") if _reset_peak() else None
    tracemalloc.start()
    started = time.perf_counter()
    actions = ExecutionActions(service, registry, blobs, lambda: None)  # type: ignore[arg-type,return-value]
    actions.submit("bench", tool, upload=Upload("big.mp4", _chunks(head, total), total))
    seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_after = _status_kib("VmHWM")
    if before is not None and peak_after is not None:
        growth = peak_after - before
    else:
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_now
    store.close()
    return MemoryFigures(
        tool=tool,
        size_mb=total / MB,
        seconds=seconds,
        rss_growth_mb=max(0, growth) / 1024,
        tracemalloc_peak_mb=traced_peak / MB,
    )


if __name__ == "__main__":
    figures = _measure(int(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(asdict(figures)))
