"""PDF tools on pypdf: merge the PDFs of a zip, split a PDF by page ranges, rotate pages.

An execution has one input file, so merging takes a .zip of PDFs and joins them in natural
file-name order (``2.pdf`` before ``10.pdf``). The zip is read defensively: a capped number of
entries and total unpacked size, entries copied out by our own names (never extracted by theirs),
macOS resource forks skipped. pypdf reads lazily and fails in many ways on broken files, so all
work on a PDF runs inside ``pdf_errors``, which turns any parse failure into ``invalid_pdf``;
encrypted PDFs are refused up front with ``encrypted_pdf``. Page ranges read like "1-3,5,8-".

A split copies into every part the fonts and images its pages use, so a small PDF whose pages
share a big resource splits into a huge zip. The split counts the pages it would write before it
writes any, and the bytes of the zip while it writes, and stops with ``output_too_large``.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pypdf import PdfReader, PdfWriter

from services.tools.base import (
    MB,
    BaseTool,
    InvalidInput,
    InvalidParams,
    OutputTooLarge,
    ToolContext,
    ToolError,
    derived_name,
)

MAX_ZIP_ENTRIES = 200
MAX_UNZIPPED = 500 * MB
# Pages one split may write. Far beyond what anyone pages through in a zip, and it bounds the
# parts (each a whole PDF, with its own copy of what its pages use) before any is written.
MAX_SPLIT_PAGES = 1000
_RANGE = re.compile(r"(\d+)(?:\s*(-)\s*(\d+)?)?")


class SplitParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ranges: str | None = Field(
        default=None,
        max_length=1000,
        description='Page ranges, one PDF each: "1-3,5,8-". Default: one PDF per page.',
    )

    @field_validator("ranges")
    @classmethod
    def _valid_ranges(cls, value: str | None) -> str | None:
        if value is not None:
            parse_ranges(value)
        return value


class RotateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    angle: Literal[90, 180, 270] = Field(default=90, description="Degrees clockwise.")
    pages: str | None = Field(
        default=None, max_length=1000, description='Pages to rotate: "1-3,5". Default: all.'
    )

    @field_validator("pages")
    @classmethod
    def _valid_pages(cls, value: str | None) -> str | None:
        if value is not None:
            parse_ranges(value)
        return value


class _PdfTool(BaseTool):
    """What the PDF tools share; it has no slug, so it is not registered itself."""

    category = "pdf"
    mode = "async"
    accepts: ClassVar[dict[str, str]] = {".pdf": "application/pdf"}
    max_size = 100 * MB
    timeout = timedelta(minutes=10)


class PdfMerge(_PdfTool):
    slug = "pdf-merge"
    name = "Merge PDFs"
    description = (
        "Upload a .zip of PDF files (a single PDF is not enough): they are merged into one PDF "
        "in natural file-name order, 2.pdf before 10.pdf. At most 200 files."
    )
    accepts: ClassVar[dict[str, str]] = {".zip": "application/zip"}
    max_size = 200 * MB
    max_entries: ClassVar[int] = MAX_ZIP_ENTRIES
    max_unzipped: ClassVar[int] = MAX_UNZIPPED

    def run(self, ctx: ToolContext) -> None:
        source = ctx.require_input()
        parts = self.unzip_pdfs(ctx, source.path())
        writer = PdfWriter()
        for done, (name, path) in enumerate(parts, start=1):
            with pdf_errors(name):
                reader = open_pdf(path, name)
                for page in reader.pages:
                    ctx.check_cancelled()
                    writer.add_page(page)
            ctx.progress(10 + 80 * done / len(parts), f"added {name}")
        out = ctx.temp_dir / "output.pdf"
        with pdf_errors("one of the PDFs"):
            writer.write(out)
        ctx.progress(95, "written")
        ctx.output.file(
            out,
            derived_name(source.filename, "merged", ".pdf", fallback="document"),
            "application/pdf",
        )

    def unzip_pdfs(self, ctx: ToolContext, zip_path: Path) -> list[tuple[str, Path]]:
        """The zip's PDFs copied into the temp dir, in natural name order: (name, path)."""
        try:
            archive = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise InvalidInput(f"not a readable zip file: {exc}", code="invalid_zip") from None
        with archive:
            entries = archive.infolist()
            if len(entries) > self.max_entries:
                raise InvalidInput(
                    f"the zip has {len(entries)} entries; at most {self.max_entries} are allowed",
                    code="zip_too_large",
                )
            # Declared sizes are a safe bound: zipfile never inflates past them (CRC-checked).
            unpacked = sum(entry.file_size for entry in entries)
            if unpacked > self.max_unzipped:
                raise InvalidInput(
                    f"the zip unpacks to {unpacked // MB} MB; at most "
                    f"{self.max_unzipped // MB} MB are allowed",
                    code="zip_too_large",
                )
            pdfs = sorted((e for e in entries if _is_pdf_entry(e)), key=lambda e: _natural(e))
            if not pdfs:
                raise InvalidInput("the zip holds no .pdf files to merge", code="invalid_zip")
            parts = []
            for number, entry in enumerate(pdfs):
                ctx.check_cancelled()
                if entry.flag_bits & 0x1:
                    raise InvalidInput(f"{entry.filename} is password-protected in the zip")
                target = ctx.temp_dir / f"part-{number:04d}.pdf"
                try:
                    with archive.open(entry) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, MB)
                except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError) as exc:
                    raise InvalidInput(
                        f"cannot unpack {entry.filename}: {exc}", code="invalid_zip"
                    ) from None
                parts.append((entry.filename, target))
        ctx.progress(10, f"unpacked {len(parts)} PDFs")
        return parts


class PdfSplit(_PdfTool):
    slug = "pdf-split"
    name = "Split PDF"
    description = (
        'Split a PDF into one PDF per page range ("1-3,5,8-"; default: one per page), '
        "delivered as a .zip. At most 1000 pages."
    )
    Params = SplitParams
    max_split_pages: ClassVar[int] = MAX_SPLIT_PAGES
    # An honest split writes about its input again (at most max_size) plus a little per part;
    # the headroom is for the fonts parts share. Beyond it the parts are copying one big
    # resource over and over (2.1 MB became 210 MB): that is what the running check stops.
    max_output = 128 * MB

    def run(self, ctx: ToolContext) -> None:
        params: SplitParams = ctx.params  # type: ignore[assignment]
        source = ctx.require_input()
        stem = Path(source.filename).stem or "document"
        out = ctx.temp_dir / "output.zip"
        with pdf_errors(source.filename):
            reader = open_pdf(source.path(), source.filename)
            count = len(reader.pages)
            ranges = resolve_ranges(params.ranges, count) or [(n, n) for n in range(1, count + 1)]
            self.check_pages(source.filename, count, ranges)
            width = len(str(count))  # zero-padded numbers keep the zip listing in page order
            written = 0  # compressed bytes in the zip so far
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
                for done, (first, last) in enumerate(ranges, start=1):
                    writer = PdfWriter()
                    for number in range(first, last + 1):
                        ctx.check_cancelled()
                        writer.add_page(reader.pages[number - 1])
                    buffer = io.BytesIO()
                    writer.write(buffer)
                    label = f"{first:0{width}d}"
                    if last != first:
                        label += f"-{last:0{width}d}"
                    archive.writestr(f"{stem}-p{label}.pdf", buffer.getvalue())
                    written += archive.infolist()[-1].compress_size
                    if written > self.max_output:
                        raise OutputTooLarge(
                            f"the split passed {_megabytes(self.max_output)}, the most it may "
                            f"write, after {done:,} of its {len(ranges):,} parts: each part "
                            "carries its own copy of the fonts and images its pages use"
                        )
                    ctx.progress(5 + 90 * done / len(ranges), f"pages {label}")
        ctx.output.file(
            out,
            derived_name(source.filename, "split", ".zip", fallback="document"),
            "application/zip",
        )

    def check_pages(self, name: str, count: int, ranges: list[tuple[int, int]]) -> None:
        """Refuse, before writing anything, a split that would write too many pages."""
        pages = sum(last - first + 1 for first, last in ranges)
        if pages > self.max_split_pages:
            raise OutputTooLarge(
                f"splitting {name} would write {pages:,} pages (it has {count:,}); at most "
                f"{self.max_split_pages:,} pages can be split at once: choose ranges, "
                f'such as "1-{min(count, self.max_split_pages)}"'
            )


class PdfRotate(_PdfTool):
    slug = "pdf-rotate"
    name = "Rotate PDF pages"
    description = 'Rotate all pages of a PDF, or some ("1-3,5"), by 90, 180 or 270 clockwise.'
    Params = RotateParams

    def run(self, ctx: ToolContext) -> None:
        params: RotateParams = ctx.params  # type: ignore[assignment]
        source = ctx.require_input()
        out = ctx.temp_dir / "output.pdf"
        with pdf_errors(source.filename):
            reader = open_pdf(source.path(), source.filename)
            count = len(reader.pages)
            pages = page_numbers(params.pages, count)
            # Cloning keeps what page copying would drop: outline, forms, metadata.
            writer = PdfWriter(clone_from=reader)
            for done, number in enumerate(pages, start=1):
                ctx.check_cancelled()
                writer.pages[number - 1].rotate(params.angle)
                ctx.progress(5 + 85 * done / len(pages), f"page {number}")
            writer.write(out)
        ctx.output.file(
            out,
            derived_name(source.filename, "rotated", ".pdf", fallback="document"),
            "application/pdf",
        )


@contextmanager
def pdf_errors(name: str) -> Iterator[None]:
    """Any failure of pypdf on ``name`` becomes ``invalid_pdf``; ours and the OS's pass through."""
    try:
        yield
    except (ToolError, OSError, MemoryError):
        raise  # a tool error already says what is wrong; disk trouble is no fault of the file
    except Exception as exc:
        # pypdf reads lazily and a broken file can fail anywhere with almost any exception
        # (PdfReadError, KeyError, ValueError, RecursionError...), so the net is wide on purpose.
        reason = str(exc)[:300] or type(exc).__name__
        raise InvalidInput(f"{name} is not a readable PDF: {reason}", code="invalid_pdf") from None


def open_pdf(path: Path, name: str) -> PdfReader:
    """A reader over a PDF with at least one page; call inside ``pdf_errors``."""
    reader = PdfReader(path)
    if reader.is_encrypted:
        raise InvalidInput(f"{name} is encrypted; remove its password first", code="encrypted_pdf")
    if len(reader.pages) == 0:
        raise InvalidInput(f"{name} has no pages", code="invalid_pdf")
    return reader


def parse_ranges(text: str) -> list[tuple[int, int | None]]:
    """ "1-3,5,8-" → [(1, 3), (5, 5), (8, None)]: 1-based, inclusive, None is "to the end"."""
    ranges: list[tuple[int, int | None]] = []
    for part in text.split(","):
        match = _RANGE.fullmatch(part.strip())
        if not match:
            raise ValueError(f'{part.strip()!r} is not a page or a range like "2-5" or "8-"')
        first = int(match[1])
        last = int(match[3]) if match[3] else (None if match[2] else first)
        if first < 1 or (last is not None and last < first):
            raise ValueError(f"{part.strip()!r} is not a range of pages (they count from 1)")
        ranges.append((first, last))
    return ranges


def resolve_ranges(text: str | None, count: int) -> list[tuple[int, int]]:
    """The ranges of ``text`` checked against a PDF of ``count`` pages; [] when no text."""
    if text is None:
        return []
    resolved = []
    for first, last in parse_ranges(text):
        last = count if last is None else last
        if max(first, last) > count:
            raise InvalidParams(f"page {max(first, last)} is past the end: the PDF has {count}")
        resolved.append((first, last))
    return resolved


def page_numbers(text: str | None, count: int) -> list[int]:
    """The distinct pages ``text`` names, in order (all when None): "1-3,2" turns page 2 once."""
    if text is None:
        return list(range(1, count + 1))
    return sorted(
        {n for first, last in resolve_ranges(text, count) for n in range(first, last + 1)}
    )


def _megabytes(size: int) -> str:
    return f"{size / MB:.4g} MB"


def _is_pdf_entry(entry: zipfile.ZipInfo) -> bool:
    base = entry.filename.rsplit("/", 1)[-1]
    return (
        not entry.is_dir()
        and base.lower().endswith(".pdf")
        and not base.startswith("._")  # AppleDouble forks macOS adds beside every file
        and not entry.filename.startswith("__MACOSX/")
    )


def _natural(entry: zipfile.ZipInfo) -> list[str | int]:
    # Alternating text and number pieces, so "page2" sorts before "page10".
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", entry.filename.casefold())]
