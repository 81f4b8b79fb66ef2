"""The PDF tool plugins on real PDFs from pypdf.

Pages have different widths, so order and page selection show in the output.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from services.tools.base import (
    MB,
    BaseTool,
    InvalidInput,
    InvalidParams,
    OutputTooLarge,
    ToolCancelled,
    local_context,
)
from services.tools.plugins.pdf import MAX_SPLIT_PAGES, PdfMerge, PdfRotate, PdfSplit
from tests.services.tools.plugin_runs import run_tool


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


def shared_image_pdf(pages: int, image_size: int) -> bytes:
    """A PDF whose pages all use one image of random bytes: small, but every part of a split
    carries its own copy of the image (the shape of the 2.1 MB PDF that split into 210 MB)."""
    first = PdfWriter()
    image = DecodedStreamObject()
    image.set_data(os.urandom(image_size))  # random: deflate in the zip cannot shrink it
    image[NameObject("/Subtype")] = NameObject("/Image")
    first.add_blank_page(100, 100)[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/XObject"): DictionaryObject({NameObject("/Im0"): image})}
    )
    buffer = io.BytesIO()
    first.write(buffer)
    # Cloned, the image is one indirect object that every page's resources can point to.
    writer = PdfWriter(clone_from=PdfReader(buffer))
    resources = writer.pages[0].raw_get("/Resources")
    for _ in range(pages - 1):
        writer.add_blank_page(100, 100)[NameObject("/Resources")] = resources
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_split_stops_as_soon_as_the_zip_passes_max_output(tmp_path: Path) -> None:
    class SmallSplit(PdfSplit):
        max_output = 1 * MB  # the real limit is 128 MB; the check is the same

    part = 64 * 1024
    path = tmp_path / "shared.pdf"
    path.write_bytes(shared_image_pdf(100, part))
    assert path.stat().st_size < 2 * part  # 100 pages, one image: the whole split is ~6.4 MB
    work = tmp_path / "work"
    work.mkdir()
    ctx = local_context(PdfSplit.Params(), work, path, "application/pdf")
    parts_written: list[float] = []
    ctx.report_progress = lambda percent, message: parts_written.append(percent)
    with pytest.raises(OutputTooLarge) as caught:
        SmallSplit().run(ctx)
    assert caught.value.code == "output_too_large"
    assert "passed 1 MB" in str(caught.value) and "of its 100 parts" in str(caught.value)
    assert ctx.output.result is None
    # It stopped at the limit plus the part that passed it, not after all 100 parts.
    written = sum(p.stat().st_size for p in work.glob("*.zip"))
    assert MB < written < MB + 2 * part
    assert len(parts_written) < 20
    # The same PDF is an honest split for the real tool: about 6.4 MB, far under its limit.
    result = run_tool(PdfSplit(), tmp_path, {}, path)
    with zipfile.ZipFile(result.path) as archive:
        assert len(archive.namelist()) == 100


def test_pdf_split_refuses_more_pages_than_the_cap_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf_bytes([100] * (MAX_SPLIT_PAGES + 1)))
    work = tmp_path / f"work-{PdfSplit.slug}"
    for ranges, pages in ((None, "1,001"), ("1-600,400-1001", "1,202")):
        with pytest.raises(OutputTooLarge) as caught:
            run_tool(PdfSplit(), tmp_path, {"ranges": ranges}, path)
        assert caught.value.code == "output_too_large"
        assert str(caught.value) == (
            f"splitting long.pdf would write {pages} pages (it has 1,001); at most 1,000 pages "
            'can be split at once: choose ranges, such as "1-1000"'
        )
        assert list(work.glob("*.zip")) == []  # refused before the zip was opened
    # Ranges within the cap split the same PDF.
    result = run_tool(PdfSplit(), tmp_path, {"ranges": "1-3,1001"}, path)
    with zipfile.ZipFile(result.path) as archive:
        assert archive.namelist() == ["long-p0001-0003.pdf", "long-p1001.pdf"]
