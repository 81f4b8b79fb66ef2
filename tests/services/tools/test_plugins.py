"""The first tool plugins, each run through ``local_context`` on real input made here.

Images come from Pillow with a different colour in each quadrant, so a rotation is checked for
its direction and not only its size; PDFs come from pypdf with pages of different widths, so
order and page selection show; videos come from the ffmpeg binary the tools use themselves.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from PIL import Image
from pydantic import ValidationError
from pypdf import PdfReader, PdfWriter

from services.tools.base import (
    BaseTool,
    InvalidInput,
    InvalidParams,
    Output,
    ToolCancelled,
    local_context,
)
from services.tools.plugins.data import JsonFormat, JsonValidate
from services.tools.plugins.encoders import Base64Decode, Base64Encode
from services.tools.plugins.hashes import HashFile, HashText
from services.tools.plugins.image import ImageConvert, ImageResize, ImageRotate
from services.tools.plugins.pdf import PdfMerge, PdfRotate, PdfSplit
from services.tools.plugins.video import VideoRotate
from services.tools.registry import discover

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


class Run:
    """One tool run: its output, the progress it reported, and the error it raised (if any)."""

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


# --- registry ---------------------------------------------------------------------------------

EXPECTED = {
    "base64-encode": ("encoders", "sync"),
    "base64-decode": ("encoders", "sync"),
    "hash-text": ("encoders", "sync"),
    "hash-file": ("encoders", "sync"),
    "json-format": ("data", "sync"),
    "json-validate": ("data", "sync"),
    "image-convert": ("image", "async"),
    "image-resize": ("image", "async"),
    "image-rotate": ("image", "async"),
    "pdf-merge": ("pdf", "async"),
    "pdf-split": ("pdf", "async"),
    "pdf-rotate": ("pdf", "async"),
    "video-rotate": ("video", "async"),
}


def test_discovery_registers_every_tool_with_its_category_and_mode() -> None:
    registry = discover(group=None)
    ours = [p for p in registry.problems if p.origin.startswith("services.tools.plugins.")]
    assert ours == []
    for slug, (category, mode) in EXPECTED.items():
        tool = registry.get(slug)
        assert (tool.category, tool.mode) == (category, mode)
        assert tool.describe()["params_schema"]["type"] == "object"
    assert "schema" in registry.get("json-validate").describe()["params_schema"]["properties"]


# --- encoders and hashes ----------------------------------------------------------------------


@pytest.mark.parametrize("url_safe", [False, True])
def test_base64_round_trip(tmp_path: Path, url_safe: bool) -> None:
    text = "héllo ~~~ wörld??>>"  # the ?, > and ~ give + and / (or - and _) in the output
    encoded = run_tool(Base64Encode(), tmp_path, {"text": text, "url_safe": url_safe}).text
    assert ("-" in encoded or "_" in encoded) == url_safe
    assert ("+" in encoded or "/" in encoded) != url_safe
    decoded = run_tool(Base64Decode(), tmp_path, {"text": encoded, "url_safe": url_safe}).text
    assert decoded == text


def test_base64_decode_takes_line_breaks_and_missing_padding(tmp_path: Path) -> None:
    assert run_tool(Base64Decode(), tmp_path, {"text": "aGVs\nbG8"}).text == "hello"


@pytest.mark.parametrize(
    ("text", "url_safe", "words"),
    [
        ("aGVsbG8*", False, "'*' is not in the alphabet"),
        ("ab-_", False, "set url_safe"),
        ("abcde", False, "length"),
        ("aGVsbG8====", False, "padding"),
    ],
)
def test_base64_decode_refuses_invalid_base64(
    tmp_path: Path, text: str, url_safe: bool, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_tool(Base64Decode(), tmp_path, {"text": text, "url_safe": url_safe})
    assert caught.value.code == "invalid_input"
    assert "invalid base64" in str(caught.value) and words in str(caught.value)


def test_base64_decode_refuses_bytes_that_are_not_text(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="decoded bytes are not text"):
        run_tool(Base64Decode(), tmp_path, {"text": "//79"})  # ff fe fd


def test_base64_encode_refuses_more_than_fits_an_inline_result() -> None:
    with pytest.raises(ValidationError, match="at most 49152"):
        Base64Encode.Params.model_validate({"text": "x" * 49153})


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256", "sha512", "blake2b"])
def test_hash_text_matches_hashlib(tmp_path: Path, algorithm: str) -> None:
    text = "Grüße aus MagicToolbox"
    result = run_tool(HashText(), tmp_path, {"text": text, "algorithm": algorithm})
    assert result.text == hashlib.new(algorithm, text.encode()).hexdigest()


def test_hash_file_streams_a_multi_chunk_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # about 3 MB: several 1 MB chunks
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    result = run_tool(HashFile(), tmp_path, {"algorithm": "sha512"}, path)
    assert result.text == hashlib.sha512(data).hexdigest()
    assert len(result.progress) >= 3 and result.progress[-1] == 100


def test_hash_refuses_unknown_algorithms() -> None:
    with pytest.raises(ValidationError):
        HashText.Params.model_validate({"text": "x", "algorithm": "crc32"})


# --- JSON -------------------------------------------------------------------------------------


def test_json_format_indents_sorts_and_minifies(tmp_path: Path) -> None:
    text = '{"b": [1, 2], "a": "é"}'
    pretty = run_tool(JsonFormat(), tmp_path, {"text": text, "indent": 4, "sort_keys": True})
    assert pretty.text == '{\n    "a": "é",\n    "b": [\n        1,\n        2\n    ]\n}'
    minified = run_tool(JsonFormat(), tmp_path, {"text": text, "indent": 0})
    assert minified.text == '{"b":[1,2],"a":"é"}'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{\n  "a": 1,\n  "b": }', "line 3, column 8"),
        ('{"a": NaN}', "NaN is not a JSON value"),
        ("", "line 1, column 1"),
    ],
)
def test_json_format_says_where_json_is_invalid(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match="invalid JSON") as caught:
        run_tool(JsonFormat(), tmp_path, {"text": text})
    assert words in str(caught.value)


def test_json_format_refuses_out_of_range_indent() -> None:
    with pytest.raises(ValidationError):
        JsonFormat.Params.model_validate({"text": "{}", "indent": 9})


def test_json_validate_answers_with_a_report(tmp_path: Path) -> None:
    good = run_tool(JsonValidate(), tmp_path, {"text": '{"a": [1, 2]}'})
    assert json.loads(good.text) == {"valid": True}
    bad = run_tool(JsonValidate(), tmp_path, {"text": '{"a": [1, 2}'})
    report = json.loads(bad.text)
    assert report["valid"] is False
    assert report["errors"][0]["line"] == 1 and report["errors"][0]["column"] == 12


def test_json_validate_with_a_schema(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    result = run_tool(JsonValidate(), tmp_path, {"text": '{"n": "x"}', "schema": schema})
    report = json.loads(result.text)
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        # Not installed here: only the syntax is checked, and the report must not claim more.
        assert report == {
            "valid": True,
            "schema_checked": False,
            "note": "jsonschema is not installed here: only the syntax was checked",
        }
    else:
        assert report["valid"] is False and report["schema_checked"] is True
        assert report["errors"][0]["path"] == "/n"


def test_json_validate_refuses_schemas_with_remote_refs() -> None:
    schema = {"properties": {"a": {"items": [{"$ref": "https://example.com/s.json"}]}}}
    with pytest.raises(ValidationError, match="only local"):
        JsonValidate.Params.model_validate({"text": "{}", "schema": schema})
    local = {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}}
    assert JsonValidate.Params.model_validate({"text": "{}", "schema": local}).json_schema


# --- images -----------------------------------------------------------------------------------


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


# --- PDF --------------------------------------------------------------------------------------


def pdf_bytes(widths: list[int], height: int = 200) -> bytes:
    """A PDF with one blank page per width: the widths tell the pages apart."""
    writer = PdfWriter()
    for width in widths:
        writer.add_blank_page(width, height)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def page_widths(data: bytes | Path) -> list[int]:
    reader = PdfReader(io.BytesIO(data) if isinstance(data, bytes) else data)
    return [round(float(page.mediabox.width)) for page in reader.pages]


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_pdf_merge_joins_the_zips_pdfs_in_natural_name_order(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "scans.zip",
        {
            "10.pdf": pdf_bytes([110]),
            "readme.txt": b"not a pdf, left out",
            "2.pdf": pdf_bytes([20, 21]),
            "__MACOSX/._2.pdf": b"\x00\x05\x16\x07 resource fork",
            "b/1.PDF": pdf_bytes([10]),
        },
    )
    result = run_tool(PdfMerge(), tmp_path, {}, archive)
    assert result.output is not None and result.output.filename == "scans-merged.pdf"
    assert page_widths(result.path) == [20, 21, 110, 10]
    assert result.progress == sorted(result.progress) and result.progress[-1] >= 90


@pytest.mark.parametrize(
    ("entries", "code", "words"),
    [
        (None, "invalid_zip", "not a readable zip"),
        ({"a.txt": b"hello"}, "invalid_zip", "no .pdf files"),
        ({"a.pdf": pdf_bytes([10]), "b.pdf": b"%PDF-1.4 garbage"}, "invalid_pdf", "b.pdf"),
        ({f"{n}.pdf": b"" for n in range(201)}, "zip_too_large", "201 entries"),
    ],
)
def test_pdf_merge_refuses_bad_zips(
    tmp_path: Path, entries: dict[str, bytes] | None, code: str, words: str
) -> None:
    path = tmp_path / "input.zip"
    if entries is None:
        path.write_bytes(b"PK but not really a zip file")
    else:
        make_zip(path, entries)
    with pytest.raises(InvalidInput) as caught:
        run_tool(PdfMerge(), tmp_path, {}, path)
    assert caught.value.code == code and words in str(caught.value)


def test_pdf_merge_caps_the_unpacked_size(tmp_path: Path) -> None:
    class SmallMerge(PdfMerge):
        max_unzipped = 1000  # the real cap is 500 MB; the check is the same

    path = make_zip(tmp_path / "big.zip", {"a.pdf": pdf_bytes([10]), "b.bin": b"\0" * 2000})
    with pytest.raises(InvalidInput, match="unpacks to") as caught:
        run_tool(SmallMerge(), tmp_path, {}, path)
    assert caught.value.code == "zip_too_large"


@pytest.fixture
def five_pages(tmp_path: Path) -> Path:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes([101, 102, 103, 104, 105]))
    return path


def test_pdf_split_by_ranges(tmp_path: Path, five_pages: Path) -> None:
    result = run_tool(PdfSplit(), tmp_path, {"ranges": "1-2, 4,5-"}, five_pages)
    assert result.output is not None and result.output.filename == "report-split.zip"
    assert result.output.content_type == "application/zip"
    with zipfile.ZipFile(result.path) as archive:
        assert archive.namelist() == ["report-p1-2.pdf", "report-p4.pdf", "report-p5.pdf"]
        parts = [page_widths(archive.read(name)) for name in archive.namelist()]
    assert parts == [[101, 102], [104], [105]]


def test_pdf_split_defaults_to_one_pdf_per_page(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf_bytes(list(range(100, 112))))
    result = run_tool(PdfSplit(), tmp_path, {}, path)
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
        assert names[:2] == ["long-p01.pdf", "long-p02.pdf"] and len(names) == 12
        assert [page_widths(archive.read(n)) for n in names] == [[w] for w in range(100, 112)]
    assert result.progress == sorted(result.progress) and len(result.progress) >= 12


@pytest.mark.parametrize("ranges", ["a-b", "3-1", "0", "1,,2", "1-2-3", ""])
def test_pdf_split_refuses_malformed_ranges(ranges: str) -> None:
    with pytest.raises(ValidationError):
        PdfSplit.Params.model_validate({"ranges": ranges})


def test_pdf_split_refuses_pages_past_the_end(tmp_path: Path, five_pages: Path) -> None:
    with pytest.raises(InvalidParams, match="page 7 is past the end: the PDF has 5") as caught:
        run_tool(PdfSplit(), tmp_path, {"ranges": "2,7"}, five_pages)
    assert caught.value.code == "invalid_params"


def test_pdf_rotate_turns_the_chosen_pages_once(tmp_path: Path, five_pages: Path) -> None:
    result = run_tool(PdfRotate(), tmp_path, {"angle": 90, "pages": "2-3,3,5"}, five_pages)
    assert result.output is not None and result.output.filename == "report-rotated.pdf"
    reader = PdfReader(result.path)
    assert [page.rotation for page in reader.pages] == [0, 90, 90, 0, 90]
    assert page_widths(result.path) == [101, 102, 103, 104, 105]  # order and pages kept


def test_pdf_rotate_all_pages_by_default(tmp_path: Path, five_pages: Path) -> None:
    result = run_tool(PdfRotate(), tmp_path, {"angle": 270}, five_pages)
    assert [page.rotation for page in PdfReader(result.path).pages] == [270] * 5


def test_pdf_rotate_refuses_other_angles() -> None:
    with pytest.raises(ValidationError):
        PdfRotate.Params.model_validate({"angle": 45})


@pytest.mark.parametrize("tool", [PdfSplit(), PdfRotate()], ids=lambda t: t.slug)
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"Dear diary, this is not a PDF.",
        b"%PDF-1.7\n%garbage that only starts like a PDF\n",
        pdf_bytes([100, 200, 300])[:400],  # truncated: no xref, no trailer
    ],
    ids=["empty", "text", "header-only", "truncated"],
)
def test_pdf_tools_refuse_broken_pdfs(tmp_path: Path, tool: BaseTool, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=r"broken\.pdf is not a readable PDF") as caught:
        run_tool(tool, tmp_path, {}, path)
    assert caught.value.code == "invalid_pdf"


def test_pdf_tools_refuse_encrypted_pdfs(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as f:
        writer.write(f)
    with pytest.raises(InvalidInput, match=r"locked\.pdf is encrypted") as caught:
        run_tool(PdfRotate(), tmp_path, {"angle": 90}, path)
    assert caught.value.code == "encrypted_pdf"


def test_pdf_split_stops_when_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf_bytes([100] * 60))
    with pytest.raises(ToolCancelled):
        run_tool(PdfSplit(), tmp_path, {}, path, cancelled=lambda: True)
    # Cancelled part-way: the loop itself checks, not only the start.
    checks = iter(range(1000))
    progress: list[float] = []
    with pytest.raises(ToolCancelled):
        ctx = local_context(PdfSplit.Params(), tmp_path, path, "application/pdf")
        ctx.report_progress = lambda percent, message: progress.append(percent)
        ctx.is_cancelled = lambda: next(checks) >= 10
        PdfSplit().run(ctx)
    assert 5 <= len(progress) < 60 and ctx.output.result is None


# --- video ------------------------------------------------------------------------------------

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
