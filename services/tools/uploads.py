"""Upload validation: decide whether a file may become a tool's input, then store it.

``validate_and_store`` first checks what a submission says about its file (name, extension,
declared size) without reading a byte of it. Then it reads only the first 8 KiB to sniff the real
format from its magic bytes (``services.tools.sniffing``; a text file renamed ``.png`` is
refused), and streams the whole file into the ``uploads`` container with the tool's size limit
enforced by the blob store, so a 500 MB upload never sits in memory. Every refusal is an
``UploadRefused`` with a stable ``code`` and an HTTP ``status`` hint; nothing is stored when a
file is refused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from itertools import chain

from events.catalog import BlobRef
from services.blobs.store import BlobStore, BlobTooLarge, Source, iter_chunks
from services.tools.base import BaseTool
from services.tools.sniffing import HEAD_SIZE, is_text_like, sniff, types_agree

# Most filesystems (ext4, NTFS, APFS) cap one path component at 255 bytes (or UTF-16 units),
# so a name of 150 four-byte characters would fail to save on the local blob store.
MAX_NAME_BYTES = 255


# The HTTP status each refusal suggests: 413 and 415 say exactly what is wrong with the file.
_STATUS = {"file_too_large": 413, "unsupported_file_type": 415, "file_type_mismatch": 415}


class UploadRefused(Exception):
    """A file that may not become a tool's input: a stable ``code``, a message for people and an
    HTTP ``status`` hint (413 too large, 415 wrong type, 400 otherwise) for problem+json.

    Raise a subclass, or the base with any code: ``UploadRefused("no_input_expected", "...")``.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS.get(code, 400)


class FileTooLarge(UploadRefused):
    def __init__(self, limit: int, size: int | None = None) -> None:
        if size is None:
            message = f"the file is larger than this tool's limit of {_human_size(limit)}"
        else:
            message = (
                f"the file is {_human_size(size)}; this tool accepts files up to "
                f"{_human_size(limit)}"
            )
        super().__init__("file_too_large", message)
        self.limit = limit


class UnsupportedFileType(UploadRefused):
    def __init__(self, message: str) -> None:
        super().__init__("unsupported_file_type", message)


class FileTypeMismatch(UploadRefused):
    def __init__(self, message: str) -> None:
        super().__init__("file_type_mismatch", message)


class InvalidFilename(UploadRefused):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_filename", message)


class EmptyFile(UploadRefused):
    def __init__(self) -> None:
        super().__init__("empty_file", "the file is empty")


class NoInputExpected(UploadRefused):
    def __init__(self, tool: BaseTool) -> None:
        super().__init__("no_input_expected", f"the tool {tool.slug!r} takes no input file")


# ---------------------------------------------------------------------------------------------
# File names

_WINDOWS_ILLEGAL = frozenset('<>:"/\\|?*')
# Cc: C0/C1 controls (NUL, newline, ESC…); Cf: invisible format characters such as the U+202E
# right-to-left override that makes "evil\u202egnp.exe" display as "evilexe.png"; Cs: lone
# surrogates, which cannot be encoded as UTF-8 and would break every store downstream.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
# Longer "extensions" are usually a sentence after a dot, not a file type worth keeping.
_MAX_EXT_LENGTH = 16


def sanitize_filename(name: str, max_length: int = 150) -> str:
    """A name that is safe to store, show and download on any OS, or ``InvalidFilename``.

    The result has no directory part, no control/format characters, nothing Windows forbids, no
    leading dot (hidden files, ``..``), at most ``max_length`` characters and 255 UTF-8 bytes
    (the extension is kept when shortening) and is never a Windows device name.
    """
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    text = unicodedata.normalize("NFC", name)
    # Both separators: a browser on Windows may send "C:\\Users\\me\\photo.png".
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(
        ch
        for ch in text
        if ch not in _WINDOWS_ILLEGAL and unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    # Dropping a character can bring a base letter and a combining mark together again.
    text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    # Windows silently drops trailing dots and spaces, so "a.txt." would become another name.
    text = text.strip(". ")
    if not text:
        raise InvalidFilename(f"the file name {name[:80]!r} has nothing usable left")
    text = _bound(text, max_length)
    if _is_reserved(text):
        text = _bound(f"_{text}", max_length)
    return text


def _is_reserved(name: str) -> bool:
    # Windows treats "con.txt", "CON.tar.gz" and "con .txt" as the device too.
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def _fits(text: str, max_length: int) -> bool:
    return len(text) <= max_length and len(text.encode("utf-8")) <= MAX_NAME_BYTES


def _bound(name: str, max_length: int) -> str:
    if _fits(name, max_length):
        return name
    stem, dot, ext = name.rpartition(".")
    ext = dot + ext
    if not stem or len(ext) > _MAX_EXT_LENGTH or not _fits(f"x{ext}", max_length):
        stem, ext = name, ""
    stem = stem[: max_length - len(ext)]
    while not _fits(stem + ext, max_length):
        stem = stem[:-1]
    # The cut may leave "name ." or "name..png"; the start is never a dot or space, so stem
    # keeps at least one character.
    return stem.rstrip(". ") + ext


# ---------------------------------------------------------------------------------------------
# Checking and storing


def _match_extension(tool: BaseTool, safe_name: str) -> tuple[str, str]:
    lower = safe_name.lower()
    # The longest match wins, so a tool may accept ".tar.gz" next to ".gz".
    matches = [ext for ext in tool.accepts if lower.endswith(ext.lower()) and len(lower) > len(ext)]
    if not matches:
        accepted = ", ".join(sorted(tool.accepts))
        raise UnsupportedFileType(f"{safe_name!r} is not a file this tool accepts ({accepted})")
    ext = max(matches, key=len)
    return ext, tool.accepts[ext]


def _check(tool: BaseTool, filename: str, size: int | None) -> tuple[str, str, str]:
    if not tool.takes_input:
        raise NoInputExpected(tool)
    safe = sanitize_filename(filename)
    ext, expected = _match_extension(tool, safe)
    limit = tool.upload_limit
    if size is not None:
        if size > limit:
            raise FileTooLarge(limit, size)
        if size == 0:
            raise EmptyFile()
    return safe, ext, expected


def _read_head(chunks: Iterator[bytes]) -> tuple[bytes, list[bytes]]:
    """The first HEAD_SIZE bytes and the chunks read to get them (to be stored first)."""
    buffered: list[bytes] = []
    have = 0
    for chunk in chunks:
        buffered.append(chunk)
        have += len(chunk)
        if have >= HEAD_SIZE:
            break
    head = b"".join(buffered)[:HEAD_SIZE]  # at most HEAD_SIZE plus one chunk
    return head, buffered


def validate_and_store(
    tool: BaseTool,
    filename: str,
    source: Source | bytes,
    blobs: BlobStore,
    *,
    container: str = "uploads",
    name_prefix: str,
    declared_size: int | None = None,
) -> tuple[BlobRef, str]:
    """Check the file against ``tool`` and stream it into ``container``; (blob ref, safe name).

    Refusals happen before anything is written, except "too large" without a declared size
    (``declared_size`` None: the client sent no Content-Length), which the blob store detects
    mid-stream and cleans up after itself. A bad name, extension or declared size is refused
    before ``source`` is read at all.
    """
    safe, ext, expected = _check(tool, filename, declared_size)
    chunks = iter_chunks(source)
    head, buffered = _read_head(chunks)
    if not head:
        raise EmptyFile()
    sniffed = sniff(head, ext, expected=expected)
    if not types_agree(sniffed, expected):
        found = f"looks like {sniffed}" if sniffed else "is not recognisable"
        raise FileTypeMismatch(
            f"the content of {safe!r} {found}, not {expected} as its {ext} extension says"
        )
    try:
        ref = blobs.put(
            container,
            f"{name_prefix.strip('/')}/{safe}",
            chain(buffered, chunks),
            content_type=expected,
            max_size=tool.upload_limit,
        )
    except BlobTooLarge as exc:
        raise FileTooLarge(exc.limit) from exc
    return ref, safe


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{size:,} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


__all__ = [
    "HEAD_SIZE",
    "EmptyFile",
    "FileTooLarge",
    "FileTypeMismatch",
    "InvalidFilename",
    "NoInputExpected",
    "UnsupportedFileType",
    "UploadRefused",
    "is_text_like",
    "sanitize_filename",
    "sniff",
    "types_agree",
    "validate_and_store",
]
