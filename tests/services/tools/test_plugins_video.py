"""The video tool plugin on videos made by the ffmpeg binary the tool uses itself."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

from services.tools.base import InvalidInput, ToolCancelled
from services.tools.plugins.video import VideoRotate
from tests.services.tools.plugin_runs import BLUE, YELLOW, near, quadrants, run_tool

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", *args], check=True, capture_output=True
    )


def video_meta(path: Path) -> tuple[dict[str, Any], bytes]:
    """The metadata ffmpeg reports for a video, and its first frame as RGB bytes."""
    frames = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(frames)
        first = next(frames)
    finally:
        frames.close()
    return meta, first


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of 64x32 test pattern at 10 fps with an AAC tone."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x32:rate=10",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
        "-t", "1", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def test_video_rotate_turns_the_frame_and_reports_progress(tmp_path: Path, clip: Path) -> None:
    result = run_tool(VideoRotate(), tmp_path, {"angle": 90}, clip)
    assert result.output is not None and result.output.filename == "clip-rotated.mp4"
    assert result.output.content_type == "video/mp4"
    meta, _ = video_meta(result.path)
    assert meta["size"] == (32, 64)
    assert meta["audio_codec"] == "aac"  # the tone is kept
    assert meta["duration"] == pytest.approx(1.0, abs=0.2)
    assert len(result.progress) >= 2 and result.progress == sorted(result.progress)
    assert result.progress[-1] >= 90


def test_video_rotate_turns_clockwise(tmp_path: Path) -> None:
    still = tmp_path / "quadrants.png"
    quadrants(64, 32).save(still)
    source = tmp_path / "still.mov"
    ffmpeg(
        "-loop", "1", "-i", str(still), "-t", "0.5", "-r", "10", "-pix_fmt", "yuv420p", str(source)
    )
    for angle, size, top_left in ((90, (32, 64), BLUE), (180, (64, 32), YELLOW)):
        result = run_tool(VideoRotate(), tmp_path, {"angle": angle}, source)
        meta, frame = video_meta(result.path)
        assert meta["size"] == size
        assert near(tuple(frame[(4 * size[0] + 4) * 3 : (4 * size[0] + 4) * 3 + 3]), top_left, 60)


def test_video_rotate_refuses_a_file_that_is_no_video(tmp_path: Path) -> None:
    path = tmp_path / "holiday.mp4"
    path.write_bytes(b"this is not a video at all\n" * 100)
    with pytest.raises(InvalidInput, match="not a readable video") as caught:
        run_tool(VideoRotate(), tmp_path, {"angle": 90}, path)
    assert caught.value.code == "invalid_video"
    assert str(tmp_path) not in str(caught.value)


def test_video_rotate_kills_ffmpeg_when_cancelled(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    checks = iter(range(1000))
    # The first check comes before ffmpeg starts; from the second on, ffmpeg is running.
    with pytest.raises(ToolCancelled):
        run_tool(VideoRotate(), tmp_path, {"angle": 270}, clip, cancelled=lambda: next(checks) >= 1)
    # The last process started is the rotation (before it: the probe, maybe the encoder list).
    assert started[-1].returncode == -signal.SIGKILL  # killed, not left running or finished
