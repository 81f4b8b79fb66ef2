"""The image tool plugins on real images from Pillow.

Images have a different colour in each quadrant, so a rotation is checked for its direction and
not only its size.
"""

from __future__ import annotations

import io
import resource
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from services.tools.base import MB, InvalidInput, OutputTooLarge
from services.tools.plugins.image import (
    ImageConvert,
    ImageResize,
    ImageRotate,
    rotate,
    rotated_size,
)
from tests.services.tools.plugin_runs import BLUE, GREEN, RED, YELLOW, near, quadrants, run_tool


def corners(image: Image.Image) -> list[tuple[int, ...]]:
    """Colours just inside the top-left, top-right, bottom-left, bottom-right corners."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    return [rgb.getpixel(xy) for xy in ((2, 2), (w - 3, 2), (2, h - 3), (w - 3, h - 3))]


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    quadrants().save(path)
    return path


@pytest.mark.parametrize(
    ("angle", "size", "expected"),
    [
        (90, (20, 40), [BLUE, RED, YELLOW, GREEN]),  # clockwise: the left side goes to the top
        (-270, (20, 40), [BLUE, RED, YELLOW, GREEN]),
        (270, (20, 40), [GREEN, YELLOW, RED, BLUE]),
        (180, (40, 20), [YELLOW, BLUE, GREEN, RED]),
        (360, (40, 20), [RED, GREEN, BLUE, YELLOW]),
    ],
)
def test_image_rotate_turns_clockwise(
    tmp_path: Path, png: Path, angle: int, size: tuple[int, int], expected: list[tuple[int, ...]]
) -> None:
    result = run_tool(ImageRotate(), tmp_path, {"angle": angle}, png)
    assert result.output is not None and result.output.filename == "photo-rotated.png"
    assert result.output.content_type == "image/png"
    with Image.open(result.path) as rotated:
        assert rotated.format == "PNG" and rotated.size == size
        assert corners(rotated) == expected
    assert result.progress == sorted(result.progress) and result.progress[-1] >= 90


def test_image_rotate_by_any_angle_grows_the_canvas(tmp_path: Path, png: Path) -> None:
    result = run_tool(ImageRotate(), tmp_path, {"angle": 30}, png)
    with Image.open(result.path) as rotated:
        assert rotated.width > 40 and rotated.height > 20
        assert rotated.mode == "RGBA" and rotated.getpixel((0, 0))[3] == 0  # PNG: clear corners
    jpeg = tmp_path / "photo.jpg"
    quadrants().save(jpeg, quality=95)
    with Image.open(run_tool(ImageRotate(), tmp_path, {"angle": 30}, jpeg).path) as rotated:
        assert near(rotated.getpixel((0, 0)), (255, 255, 255), 10)  # no alpha: white corners


def test_image_rotate_applies_exif_orientation_first(tmp_path: Path) -> None:
    # Orientation 6: the camera stored the picture turned; viewers turn it 90 clockwise.
    path = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    quadrants().save(path, quality=95, exif=exif)
    result = run_tool(ImageRotate(), tmp_path, {"angle": 90}, path)
    with Image.open(result.path) as rotated:
        # As seen (20x40), then turned 90 more: the stored picture upside down.
        assert rotated.size == (40, 20)
        got = corners(rotated)
        assert all(near(c, e) for c, e in zip(got, [YELLOW, BLUE, GREEN, RED], strict=True))
        assert rotated.getexif().get(0x0112) in (None, 1)  # viewers must not turn it again


def test_image_rotate_refuses_angles_out_of_range() -> None:
    with pytest.raises(ValidationError):
        ImageRotate.Params.model_validate({"angle": 361})


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 10}, (10, 5)),
        ({"height": 40}, (80, 40)),
        ({"width": 10, "height": 10}, (10, 5)),  # fits inside the box
        ({"width": 10, "height": 10, "keep_aspect": False}, (10, 10)),
        ({"height": 7, "keep_aspect": False}, (40, 7)),
    ],
)
def test_image_resize(
    tmp_path: Path, png: Path, params: dict[str, Any], size: tuple[int, int]
) -> None:
    result = run_tool(ImageResize(), tmp_path, params, png)
    assert result.output is not None and result.output.filename == "photo-resized.png"
    with Image.open(result.path) as resized:
        assert resized.size == size
        rgb = resized.convert("RGB")
        assert near(rgb.getpixel((0, 0)), RED)
        assert near(rgb.getpixel((size[0] - 1, size[1] - 1)), YELLOW)


@pytest.mark.parametrize(
    "params", [{}, {"keep_aspect": False}, {"width": 0}, {"width": 10_001}, {"height": -5}]
)
def test_image_resize_params_are_validated(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ImageResize.Params.model_validate(params)


@pytest.mark.parametrize(
    ("fmt", "pil_format", "filename", "content_type"),
    [
        ("jpeg", "JPEG", "logo-converted.jpg", "image/jpeg"),
        ("webp", "WEBP", "logo-converted.webp", "image/webp"),
        ("gif", "GIF", "logo-converted.gif", "image/gif"),
        ("bmp", "BMP", "logo-converted.bmp", "image/bmp"),
        ("tiff", "TIFF", "logo-converted.tiff", "image/tiff"),
        ("png", "PNG", "logo-converted.png", "image/png"),
    ],
)
def test_image_convert(
    tmp_path: Path, fmt: str, pil_format: str, filename: str, content_type: str
) -> None:
    # Transparent on the right half: formats without alpha must show white there, not black.
    source = quadrants(mode="RGBA")
    source.paste((0, 0, 0, 0), (20, 0, 40, 20))
    path = tmp_path / "logo.png"
    source.save(path)
    result = run_tool(ImageConvert(), tmp_path, {"format": fmt, "quality": 90}, path)
    assert result.output is not None
    assert (result.output.filename, result.output.content_type) == (filename, content_type)
    with Image.open(result.path) as converted:
        assert converted.format == pil_format and converted.size == (40, 20)
        assert near(corners(converted)[0], RED)
        if pil_format in ("JPEG", "BMP"):
            assert near(corners(converted)[1], (255, 255, 255))
        else:
            assert converted.convert("RGBA").getpixel((30, 5))[3] == 0


def test_image_tools_refuse_a_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are my notes, not a picture\n")
    with pytest.raises(InvalidInput, match="not a readable image") as caught:
        run_tool(ImageRotate(), tmp_path, {"angle": 90}, path)
    assert caught.value.code == "invalid_input"
    assert str(tmp_path) not in str(caught.value)  # no server paths in what users see


def test_image_tools_refuse_a_truncated_image(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 50).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InvalidInput, match="not a readable image"):
        run_tool(ImageResize(), tmp_path, {"width": 10}, path)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds no pixels: what a decompression bomb looks like."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 30_000])  # above Pillow's limit, and above twice it
def test_image_tools_refuse_decompression_bombs(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side))
    with pytest.raises(InvalidInput) as caught:
        run_tool(ImageConvert(), tmp_path, {"format": "jpeg"}, path)
    assert caught.value.code == "image_too_large"


def blank_png(width: int, height: int) -> bytes:
    """A real, decodable black PNG, compressed row by row: a few hundred KB on disk that would
    be hundreds of MB decoded, made without ever holding the pixels."""
    row = bytes(1 + 3 * width)  # filter byte, then RGB
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = png_header(width, height)
    return header[:-12] + _png_chunk(b"IDAT", data) + header[-12:]  # IDAT before IEND


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@pytest.fixture(scope="module")
def attack_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shape of the attack: 9400 x 9400 (just under the decoding limit) in ~0.3 MB."""
    path = tmp_path_factory.mktemp("attack") / "small.png"
    path.write_bytes(blank_png(9400, 9400))
    return path


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def test_image_rotate_refuses_an_output_past_the_pixel_cap_before_decoding(
    tmp_path: Path, attack_png: Path
) -> None:
    assert attack_png.stat().st_size < MB
    rss_before, started = max_rss_mb(), time.monotonic()
    with pytest.raises(OutputTooLarge) as caught:
        run_tool(ImageRotate(), tmp_path, {"angle": 45}, attack_png)
    elapsed, grown = time.monotonic() - started, max_rss_mb() - rss_before
    assert caught.value.code == "output_too_large"
    assert str(caught.value) == (
        "the rotated image would be 13,294 x 13,294 pixels (176.7 megapixels); "
        "the limit is 50 megapixels"
    )
    # Refused from the header: not the 0.35 GB decode, let alone the 1.7 GB, 22 s rotation.
    assert elapsed < 1 and grown < 100
    assert not list((tmp_path / "work-image-rotate").glob("output*"))


def test_image_tools_never_refuse_an_output_no_bigger_than_the_input(
    tmp_path: Path, png: Path
) -> None:
    # The cap is on growth: a quarter turn or a resize down of a big photo is always made.
    class Rotate(ImageRotate):
        max_output_pixels = 100  # the input has 800

    class Resize(ImageResize):
        max_output_pixels = 100

    with Image.open(run_tool(Rotate(), tmp_path, {"angle": 90}, png).path) as rotated:
        assert rotated.size == (20, 40)
    with Image.open(run_tool(Resize(), tmp_path, {"width": 30}, png).path) as resized:
        assert resized.size == (30, 15)


def test_image_resize_refuses_an_output_past_the_pixel_cap(tmp_path: Path, png: Path) -> None:
    started = time.monotonic()
    with pytest.raises(OutputTooLarge) as caught:
        run_tool(
            ImageResize(), tmp_path, {"width": 8000, "height": 8000, "keep_aspect": False}, png
        )
    assert time.monotonic() - started < 1
    assert caught.value.code == "output_too_large"
    assert str(caught.value) == (
        "the resized image would be 8,000 x 8,000 pixels (64.0 megapixels); "
        "the limit is 50 megapixels"
    )
    assert not list((tmp_path / "work-image-resize").glob("output*"))


class TinyRotate(ImageRotate):
    max_output_pixels = 1000  # the real cap is 50 megapixels; the check is the same


class TinyResize(ImageResize):
    max_output_pixels = 1000


@pytest.mark.parametrize(
    ("tool", "params", "size"),
    [
        (TinyRotate(), {"angle": 90}, (20, 40)),  # 800 px: not bigger than the input
        (TinyRotate(), {"angle": 2}, (42, 22)),  # 924 px
        (TinyResize(), {"width": 44}, (44, 22)),  # 968 px
        (TinyResize(), {"width": 50, "height": 20, "keep_aspect": False}, (50, 20)),  # 1000 px
    ],
)
def test_image_tools_make_outputs_up_to_the_pixel_cap(
    tmp_path: Path, png: Path, tool: ImageRotate | ImageResize, params: dict[str, Any], size: Any
) -> None:
    with Image.open(run_tool(tool, tmp_path, params, png).path) as made:
        assert made.size == size


@pytest.mark.parametrize(
    ("tool", "params", "words"),
    [
        (TinyRotate(), {"angle": 3}, "the rotated image would be 42 x 24 pixels"),
        (TinyResize(), {"width": 46}, "the resized image would be 46 x 23 pixels"),
    ],
)
def test_image_tools_refuse_outputs_past_the_pixel_cap(
    tmp_path: Path, png: Path, tool: ImageRotate | ImageResize, params: dict[str, Any], words: str
) -> None:
    with pytest.raises(OutputTooLarge, match=words) as caught:
        run_tool(tool, tmp_path, params, png)
    assert caught.value.code == "output_too_large"


@pytest.mark.parametrize("angle", [1, 30, 45, 89, 91, 135, -10, 359])
@pytest.mark.parametrize("size", [(40, 20), (7, 13), (333, 17)])
def test_rotated_size_is_what_pillow_makes(angle: int, size: tuple[int, int]) -> None:
    # The cap is checked on this prediction, so it must be the size the rotation really has.
    made = rotate(Image.new("L", size), angle, transparent_corners=False)
    assert rotated_size(size, angle) == made.size


@pytest.mark.parametrize("pillow", ["warns", "warnings are errors", "its check is off"])
def test_image_tools_refuse_decompression_bombs_however_pillow_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow: str
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(10_000, 10_000))  # past Pillow's limit, under twice it: a warning
    if pillow == "its check is off":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    action = "error" if pillow == "warnings are errors" else "ignore"
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        with pytest.raises(InvalidInput) as caught:
            run_tool(ImageConvert(), tmp_path, {"format": "jpeg"}, path)
    assert caught.value.code == "image_too_large"
    assert "89.5 megapixels" in str(caught.value)
