"""Video rotation with the ffmpeg binary that ships in the imageio-ffmpeg wheel.

ffmpeg runs as a subprocess; nothing else is needed on the machine. A first ``ffmpeg -i`` probe
reads the duration and streams from its banner (and refuses what is not a video), then the
rotation runs with ``-progress pipe:1``, whose ``out_time_us`` against the duration gives the
percent. Both pipes are drained by threads so a chatty stderr can never block ffmpeg, and the
main loop wakes often enough to kill ffmpeg promptly on cancel or at the deadline. The result is
always an MP4 (H.264 when the binary has libx264, else MPEG-4 part 2) with the first audio track
copied when MP4 can hold it, re-encoded to AAC when not. Positive angles turn clockwise.
"""

from __future__ import annotations

import functools
import queue
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, ClassVar, Literal

import imageio_ffmpeg
from pydantic import BaseModel, ConfigDict, Field

from services.tools.base import MB, BaseTool, InvalidInput, ToolContext, ToolError, derived_name

FILTERS = {90: "transpose=clock", 180: "hflip,vflip", 270: "transpose=cclock"}
# yuv420p (what players expect of H.264) needs even sides; this drops at most one pixel row.
EVEN_SIDES = "scale=trunc(iw/2)*2:trunc(ih/2)*2"
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "alac"}  # copied as they are into MP4
# ffmpeg's words for input it cannot decode, as opposed to a failure of ffmpeg itself.
BAD_INPUT = (
    "invalid data found",
    "moov atom not found",
    "could not find codec parameters",
    "error opening input",
    "does not contain any stream",
    "error while decoding",
)
POLL_S = 0.25


class RotateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    angle: Literal[90, 180, 270] = Field(default=90, description="Degrees clockwise.")


@dataclass(frozen=True)
class Probe:
    duration_s: float | None  # None when the container does not say (some live WebM)
    audio_codec: str | None  # of the first audio stream; None without audio


class VideoRotate(BaseTool):
    slug = "video-rotate"
    name = "Rotate video"
    category = "video"
    description = "Rotate a video by 90, 180 or 270 degrees clockwise; the result is an MP4."
    mode = "async"
    Params = RotateParams
    accepts: ClassVar[dict[str, str]] = {
        ".mp4": "video/mp4",
        ".mov": "video/quicktime",
        ".webm": "video/webm",
        ".mkv": "video/x-matroska",
        ".avi": "video/x-msvideo",
    }
    max_size = 500 * MB
    timeout = timedelta(minutes=30)

    def run(self, ctx: ToolContext) -> None:
        params: RotateParams = ctx.params  # type: ignore[assignment]
        source = ctx.require_input()
        exe, codec = ffmpeg()
        src = source.path()
        info = probe(exe, src, source.filename)
        ctx.progress(2, "probed")
        ctx.check_cancelled()
        out = ctx.temp_dir / "output.mp4"
        audio = (
            ["-c:a", "copy"] if info.audio_codec in MP4_AUDIO else ["-c:a", "aac", "-b:a", "160k"]
        )
        video = ["-c:v", codec, "-pix_fmt", "yuv420p"]
        video += ["-preset", "veryfast", "-crf", "20"] if codec == "libx264" else ["-q:v", "3"]
        command = [
            exe, "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1", "-y",
            "-i", str(src),
            # The first video and audio only: other streams (subtitles, data) may not fit MP4.
            "-map", "0:v:0", "-map", "0:a:0?",
            "-vf", f"{FILTERS[params.angle]},{EVEN_SIDES}",
            *video, *audio,
            "-movflags", "+faststart", str(out),
        ]  # fmt: skip
        deadline = time.monotonic() + self.timeout.total_seconds()
        run_ffmpeg(
            ctx, command, info.duration_s, deadline, lambda s: s.replace(str(src), source.filename)
        )
        ctx.progress(100, "done")
        ctx.output.file(
            out, derived_name(source.filename, "rotated", ".mp4", fallback="video"), "video/mp4"
        )


@functools.cache
def ffmpeg() -> tuple[str, str]:
    """The bundled ffmpeg and the best video encoder it has for MP4 (asked once per process)."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    listing = subprocess.run(
        [exe, "-hide_banner", "-encoders"], capture_output=True, timeout=30, check=False
    ).stdout.decode("utf-8", "replace")
    codec = "libx264" if re.search(r"^\s*V\S*\s+libx264\s", listing, re.MULTILINE) else "mpeg4"
    return exe, codec


def probe(exe: str, path: Path, filename: str) -> Probe:
    """Duration and audio codec from ``ffmpeg -i``'s banner; InvalidInput if it is no video."""
    # Without an output ffmpeg exits 1 by design; the banner on stderr is what we want.
    try:
        banner = subprocess.run(
            [exe, "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        # Reading a header takes milliseconds; a minute means ffmpeg is lost in a broken file.
        raise InvalidInput(
            "not a readable video: ffmpeg could not read it", code="invalid_video"
        ) from None
    if not re.search(r"Stream #\S+.*?: Video: ", banner):
        lines = [line for line in banner.splitlines() if "output file" not in line]
        reason = _last_lines(lines, lambda s: s.replace(str(path), filename)) or "no video stream"
        raise InvalidInput(f"not a readable video: {reason}", code="invalid_video")
    duration = None
    if match := re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", banner):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds) or None
    audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", banner)
    return Probe(duration, audio[1] if audio else None)


def run_ffmpeg(
    ctx: ToolContext,
    command: list[str],
    duration_s: float | None,
    deadline: float,
    redact: Callable[[str], str],
) -> None:
    """Run ffmpeg to the end, reporting progress; kill it on cancel, deadline or any error."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    progress: queue.Queue[str | None] = queue.Queue()
    stderr_tail: deque[str] = deque(maxlen=40)
    pumps = [
        threading.Thread(target=_pump, args=(process.stdout, progress.put, True), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, stderr_tail.append), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    reported = 0.0
    try:
        while True:
            ctx.check_cancelled()
            if time.monotonic() > deadline:
                raise ToolError("the video took too long to process", code="timeout")
            try:
                line = progress.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:  # stdout closed: ffmpeg is exiting
                break
            key, _, value = line.partition("=")
            # out_time_ms is also in microseconds (a historical ffmpeg quirk).
            if key in ("out_time_us", "out_time_ms") and duration_s and value.isdigit():
                percent = 5 + 90 * min(1.0, int(value) / 1e6 / duration_s)
                if percent > reported:
                    reported = percent
                    ctx.progress(percent, "rotating")
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pump in pumps:
            pump.join(timeout=5)
    if returncode != 0:
        reason = _last_lines(stderr_tail, redact) or f"ffmpeg exited with {returncode}"
        if any(marker in reason.lower() for marker in BAD_INPUT):
            raise InvalidInput(f"not a readable video: {reason}", code="invalid_video")
        raise ToolError(f"ffmpeg failed: {reason}", code="ffmpeg_failed")


def _pump(stream: IO[bytes], sink: Callable[[str | None], None], close: bool = False) -> None:
    for raw in stream:
        sink(raw.decode("utf-8", "replace").rstrip())
    if close:
        sink(None)


def _last_lines(lines: list[str] | deque[str], redact: Callable[[str], str]) -> str:
    # ffmpeg's last words say what went wrong; temp paths are the server's business, not users'.
    kept = [redact(line.strip()) for line in lines if line.strip()][-3:]
    return " | ".join(kept)[:600]
