"""Upload validation with real files (Pillow PNG/JPEG, pypdf PDF) and the real local blob store."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import unicodedata
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image
from pypdf import PdfReader, PdfWriter

from services.blobs.local import LocalBlobStore
from services.tools.base import GLOBAL_MAX_UPLOAD, MB, BaseTool
from services.tools.sniffing import HEAD_SIZE, sniff, types_agree
from services.tools.uploads import (
    UploadRefused,
    sanitize_filename,
    validate_and_store,
)


class DocTool(BaseTool):
    slug = "test-docs"
    name = "Test documents"
    category = "data"
    accepts: ClassVar[dict[str, str]] = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".pdf": "application/pdf",
        ".txt": "text/plain",
        ".json": "application/json",
    }
    max_size = 1 * MB


class BigTextTool(BaseTool):
    slug = "test-big-text"
    name = "Test big text"
    category = "data"
    accepts: ClassVar[dict[str, str]] = {".txt": "text/plain"}


class NoInputTool(BaseTool):
    slug = "test-no-input"
    name = "Test no input"
    category = "encoders"


def stored(blobs: LocalBlobStore) -> list[str]:
    return sorted(item.name for item in blobs.list("uploads"))


def refused(code: str, fn, *args, **kwargs) -> UploadRefused:  # type: ignore[no-untyped-def]
    with pytest.raises(UploadRefused) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, str(info.value)
    assert str(info.value)  # a message a person can read
    return info.value


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=300)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def in_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def untouchable() -> Iterator[bytes]:
    pytest.fail("the source was read although the upload should be refused first")
    yield b""  # pragma: no cover - makes this a generator


def store(blobs: LocalBlobStore, filename: str, source, tool: BaseTool | None = None, **kw):  # type: ignore[no-untyped-def]
    return validate_and_store(
        tool or DocTool(), filename, source, blobs, name_prefix="exec-1", **kw
    )


# -- real files pass, and what is stored is exactly what was sent -------------------------------


@pytest.mark.parametrize(
    ("filename", "make", "content_type"),
    [
        ("photo.png", png_bytes, "image/png"),
        ("photo.jpg", jpeg_bytes, "image/jpeg"),
        ("report.pdf", pdf_bytes, "application/pdf"),
    ],
)
def test_real_files_are_stored_byte_for_byte(
    blobs: LocalBlobStore, filename: str, make, content_type: str
) -> None:  # type: ignore[no-untyped-def]
    data = make()
    ref, safe = store(blobs, filename, in_chunks(data, 1000), declared_size=len(data))

    assert safe == filename
    assert ref.container == "uploads"
    assert ref.name == f"exec-1/{filename}"
    assert ref.content_type == content_type
    assert ref.size == len(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(blobs.get("uploads", ref.name)) == data


def test_stored_png_and_pdf_still_open(blobs: LocalBlobStore) -> None:
    png_ref, _ = store(blobs, "a.png", png_bytes((31, 17)))
    pdf_ref, _ = store(blobs, "b.pdf", io.BytesIO(pdf_bytes()))

    with Image.open(io.BytesIO(b"".join(blobs.get("uploads", png_ref.name)))) as image:
        assert image.size == (31, 17)
    assert len(PdfReader(io.BytesIO(b"".join(blobs.get("uploads", pdf_ref.name)))).pages) == 1


def test_a_file_object_and_one_byte_chunks_work_too(blobs: LocalBlobStore) -> None:
    data = png_bytes((400, 300))
    ref_file, _ = store(blobs, "file.png", io.BytesIO(data))
    ref_bytes, _ = store(blobs, "tiny-chunks.png", in_chunks(data, 1))

    assert ref_file.sha256 == ref_bytes.sha256 == hashlib.sha256(data).hexdigest()


def test_extension_case_does_not_matter(blobs: LocalBlobStore) -> None:
    ref, safe = store(blobs, "HOLIDAY.PNG", png_bytes())
    assert safe == "HOLIDAY.PNG"
    assert ref.content_type == "image/png"


def test_text_and_json_pass(blobs: LocalBlobStore) -> None:
    store(blobs, "notes.txt", [b"GIFs I like\n", "and caf\u00e9s\n".encode()])  # "GIF" is magic
    store(blobs, "data.json", [b'{"a": [1, 2, 3]}'])
    assert stored(blobs) == ["exec-1/data.json", "exec-1/notes.txt"]


def test_a_character_cut_by_the_8_kib_head_is_still_text(blobs: LocalBlobStore) -> None:
    data = b"a" * (HEAD_SIZE - 1) + "\u20ac".encode() * 10  # a 3-byte euro sign spans the cut
    ref, _ = store(blobs, "euros.txt", [data])
    assert ref.size == len(data)


# -- wrong content under a trusted-looking name -------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "make"),
    [
        ("innocent.png", lambda: b"just some text, not an image\n" * 50),
        ("photo.jpg", png_bytes),
        ("photo.txt", png_bytes),
        ("photo.json", png_bytes),
        ("report.png", pdf_bytes),
        ("photo.pdf", jpeg_bytes),
        ("data.json", lambda: b'{"a": 1}\x00\x00'),
    ],
)
def test_content_that_disagrees_with_the_extension_is_refused_and_not_stored(
    blobs: LocalBlobStore, filename: str, make
) -> None:  # type: ignore[no-untyped-def]
    error = refused("file_type_mismatch", store, blobs, filename, [make()])
    assert error.status == 415
    assert stored(blobs) == []


def test_sniff_reports_what_the_bytes_are() -> None:
    assert sniff(png_bytes(), ".jpg") == "image/png"
    assert sniff(pdf_bytes(), ".pdf") == "application/pdf"
    assert sniff(b"plain words", ".csv") == "text/csv"
    assert sniff(b"plain words", ".bin") == "text/plain"
    assert sniff(b"\x00\x01\x02\xff", ".bin") is None


@pytest.mark.parametrize(
    ("sniffed", "expected", "agree"),
    [
        ("image/jpeg", "image/jpg", True),  # unofficial spelling of the same format
        ("image/apng", "image/png", True),  # an animated PNG is a PNG
        ("application/zip", "application/vnd.oasis.opendocument.text", True),
        ("text/plain", "text/csv", True),  # text cannot be told apart by its bytes
        ("video/quicktime", "video/mp4", False),  # different brands: the tool lists both
        ("image/png", "image/jpeg", False),
        ("image/png", "application/x-parquet", False),  # unknown format, but clearly a PNG
        (None, "application/x-parquet", True),  # unknown format: left to the tool
        (None, "image/png", False),
        ("image/png", "application/octet-stream", True),  # the tool takes any bytes
    ],
)
def test_types_agree(sniffed: str | None, expected: str, agree: bool) -> None:
    assert types_agree(sniffed, expected) is agree


# -- names, types and sizes the tool does not take -----------------------------------------------


@pytest.mark.parametrize("filename", ["setup.exe", "photo.png.exe", "archive.zip", "png"])
def test_an_extension_the_tool_does_not_accept_is_refused(
    blobs: LocalBlobStore, filename: str
) -> None:
    error = refused("unsupported_file_type", store, blobs, filename, untouchable())
    assert error.status == 415


def test_a_stream_past_the_limit_is_refused_and_nothing_is_stored(blobs: LocalBlobStore) -> None:
    def text_forever() -> Iterator[bytes]:
        for _ in range(5):
            yield b"line of text\n" * 20_000  # 260 KB a chunk, 1.3 MB in all

    error = refused("file_too_large", store, blobs, "big.txt", text_forever())
    assert error.status == 413
    assert "1 MB" in str(error)
    assert stored(blobs) == []
    assert list((blobs.root / ".incoming").iterdir()) == []


def test_a_declared_size_over_the_limit_is_refused_before_reading(blobs: LocalBlobStore) -> None:
    error = refused("file_too_large", store, blobs, "big.png", untouchable(), declared_size=MB + 1)
    assert "1 MB" in str(error)
    assert stored(blobs) == []


def test_the_declared_file_is_checked_before_reading_it(blobs: LocalBlobStore) -> None:
    _, safe = store(blobs, "../Scan 01.PDF", pdf_bytes(), declared_size=1000)
    assert safe == "Scan 01.PDF"
    refused("empty_file", store, blobs, "a.png", untouchable(), declared_size=0)
    refused("unsupported_file_type", store, blobs, "a.gif", untouchable(), declared_size=10)
    refused("invalid_filename", store, blobs, "../..", untouchable(), declared_size=10)
    # The global cap wins over a tool that asks for more.
    big = type("Huge", (BigTextTool,), {"max_size": 10 * GLOBAL_MAX_UPLOAD})()
    size = GLOBAL_MAX_UPLOAD + 1
    error = refused("file_too_large", store, blobs, "a.txt", untouchable(), big, declared_size=size)
    assert "500 MB" in str(error)
    assert stored(blobs) == ["exec-1/Scan 01.PDF"]


@pytest.mark.parametrize("source", [[], [b"", b""], b"", io.BytesIO()])
def test_an_empty_file_is_refused(blobs: LocalBlobStore, source) -> None:  # type: ignore[no-untyped-def]
    error = refused("empty_file", store, blobs, "empty.txt", source)
    assert error.status == 400
    assert stored(blobs) == []


def test_a_tool_without_input_refuses_a_file(blobs: LocalBlobStore) -> None:
    refused("no_input_expected", store, blobs, "a.txt", untouchable(), tool=NoInputTool())


def test_refusals_carry_a_status_hint_for_their_code() -> None:
    assert UploadRefused("file_too_large", "too big").status == 413
    assert UploadRefused("file_type_mismatch", "no").status == 415
    assert UploadRefused("no_input_expected", "no", status=422).status == 422
    assert UploadRefused("empty_file", "empty").status == 400


# -- file names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\x\\..\\y.png", "y.png"),
        ("/abs/path/to/file.pdf", "file.pdf"),
        ("re\x00port\n.pdf", "report.pdf"),
        ("invoice\u202efdp.exe.txt", "invoicefdp.exe.txt"),  # RTL override dropped
        ('a<b>c:d"e|f?g*h.txt', "abcdefgh.txt"),
        ("  lots \t of   space .txt", "lots of space .txt"),
        (".bashrc.txt", "bashrc.txt"),
        ("...hidden.png", "hidden.png"),
        ("trailing.txt. . ", "trailing.txt"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # NFC: e + combining acute becomes é
        ("CON.txt", "_CON.txt"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("com1 .png", "_com1 .png"),
        ("LPT9.pdf", "_LPT9.pdf"),
        ("console.txt", "console.txt"),
    ],
)
def test_sanitize_filename(raw: str, safe: str) -> None:
    assert sanitize_filename(raw) == safe


def test_long_names_are_bounded_and_keep_their_extension() -> None:
    name = sanitize_filename("x" * 1000 + ".png")
    assert len(name) == 150
    assert name.endswith("x.png")

    # 255 bytes is the filesystem's limit even when 150 characters would fit.
    emoji = sanitize_filename("\U0001f600" * 1000 + ".jpg")
    assert emoji.endswith(".jpg")
    assert len(emoji.encode()) <= 255

    assert sanitize_filename("abcdefgh.png", max_length=7) == "abc.png"
    assert sanitize_filename("abcdefgh.png", max_length=4) == "abcd"


@pytest.mark.parametrize("raw", ["", "   ", "..", "../..", "dir/", "\x00\x01", "\u202e", "<>|?*"])
def test_names_with_nothing_usable_are_refused(raw: str) -> None:
    error = refused("invalid_filename", sanitize_filename, raw)
    assert error.status == 400


def test_traversal_names_are_stored_inside_the_execution_prefix(blobs: LocalBlobStore) -> None:
    ref, safe = store(blobs, "..\\..\\..\\windows\\win.png", png_bytes())
    assert (safe, ref.name) == ("win.png", "exec-1/win.png")
    assert (blobs.root / "uploads" / "exec-1" / "win.png").is_file()


_NAME_PARTS = st.one_of(
    st.characters(exclude_categories=()),  # includes lone surrogates
    st.sampled_from(["/", "\\", ".", "..", " ", "\u202e", "\x00", "\n", "CON", ".png", "é"]),
)


@settings(max_examples=500, deadline=None)
@given(raw=st.lists(_NAME_PARTS, max_size=400).map("".join), bound=st.integers(1, 300))
def test_sanitize_filename_property(raw: str, bound: int) -> None:
    try:
        name = sanitize_filename(raw, max_length=bound)
    except UploadRefused as exc:
        assert exc.code == "invalid_filename"
        return
    assert name
    assert "/" not in name and "\\" not in name
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in name)
    assert not name.startswith((".", " "))
    assert len(name) <= bound
    assert len(name.encode("utf-8")) <= 255
    assert name.split(".")[0].rstrip().upper() not in {"CON", "PRN", "AUX", "NUL"}
    assert sanitize_filename(name, max_length=bound) == name  # already safe stays as it is


# -- memory ------------------------------------------------------------------------------------


def test_a_100_mb_upload_streams_without_buffering(blobs: LocalBlobStore) -> None:
    body = b"0123456789abcdef" * (MB // 16)
    total = 100

    def hundred_mb() -> Iterator[bytes]:
        # A fresh 1 MB object each time, as a real reader makes: holding on to chunks would
        # then show up in the peak, which re-yielding one shared object would hide.
        for i in range(total):
            yield b"%08d" % i + body[8:]

    tracemalloc.start()
    try:
        ref, _ = store(blobs, "big.txt", hundred_mb(), tool=BigTextTool())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    print(f"peak traced memory for a {total} MB upload: {peak / MB:.1f} MB")
    assert ref.size == total * MB
    assert peak < 16 * MB
