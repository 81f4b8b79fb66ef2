"""Upload validation: decide whether a file may become a tool's input, then store it.

Before any bytes arrive, ``check_declared`` checks what a submission says about its file (name,
extension, size). When the bytes come, ``validate_and_store`` cleans the name, reads only the first
8 KiB to sniff the real format from its magic bytes (a text file renamed ``.png`` is refused), and
then streams the whole file into the ``uploads`` container with the tool's size limit enforced by
the blob store, so a 500 MB upload never sits in memory. Every refusal is an ``UploadRefused`` with
a stable ``code`` and an HTTP ``status`` hint; nothing is stored when a file is refused.
"""

from __future__ import annotations

import codecs
import mimetypes
import unicodedata
from collections.abc import Iterator
from itertools import chain

import filetype
from filetype.types.base import Type as FileKind

from events.catalog import BlobRef
from services.blobs.store import CHUNK_SIZE, BlobStore, BlobTooLarge, Source
from services.tools.base import GLOBAL_MAX_UPLOAD, BaseTool

# filetype never looks past 8 KiB, so neither do we before deciding.
HEAD_SIZE = 8 * 1024
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
# Content types

# Names that mean the same format. filetype reports one spelling; a tool may declare another.
# Each entry is a spelling we would accept for the same bytes, never a different format:
# - image/jpg, image/pjpeg: common but unofficial names for JPEG.
# - image/apng: an animated PNG is a valid PNG (decoders show its first frame).
# - video/x-m4v: Apple's brand of the same MPEG-4 container; .m4v files are MP4 files.
# - audio/x-wav, audio/x-flac, audio/x-aiff, audio/x-m4a, audio/mp3: pre-registration names.
# - font/*: filetype cannot tell WOFF from WOFF2 or TTF from OTF, so it reports one family type.
# Deliberately absent: video/quicktime ~ video/mp4. Both are ISO BMFF, but filetype tells them
# apart by the ftyp brand, which is exactly what differs; a tool that handles both lists both
# .mp4 and .mov, just as a PNG named .jpg is refused rather than trusted.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/apng": "image/png",
    "image/vnd.microsoft.icon": "image/x-icon",
    "video/x-m4v": "video/mp4",
    "audio/wav": "audio/x-wav",
    "audio/wave": "audio/x-wav",
    "audio/vnd.wave": "audio/x-wav",
    "audio/flac": "audio/x-flac",
    "audio/aiff": "audio/x-aiff",
    "audio/x-m4a": "audio/mp4",
    "audio/mp3": "audio/mpeg",
    "application/x-zip-compressed": "application/zip",
    "font/woff": "application/font-woff",
    "font/woff2": "application/font-woff",
    "font/ttf": "application/font-sfnt",
    "font/otf": "application/font-sfnt",
    "font/sfnt": "application/font-sfnt",
}
# filetype recognises these zip-based formats only when a telltale member comes first in the
# archive; many writers put it elsewhere, and then filetype can only say "zip".
_ZIP_BASED = frozenset(
    {
        "application/epub+zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
    }
)
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-ndjson",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/sql",
    }
)
# The built-in table only: the system's mime.types differs between machines.
_MIMETYPES = mimetypes.MimeTypes()


def _canonical(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _filetype_mime(kind: FileKind) -> str:
    # filetype labels Embedded OpenType fonts "application/octet-stream", which would make
    # every EOT look like "any bytes"; use its registered type instead.
    if kind.extension == "eot":
        return "application/vnd.ms-fontobject"
    return _canonical(kind.mime)


# The formats filetype can recognise: for these, "no match" means "not this format".
_SNIFFABLE = frozenset(_filetype_mime(kind) for kind in filetype.types)


def is_text_like(content_type: str) -> bool:
    """Whether the format is plain text underneath (it has no magic bytes to sniff)."""
    ct = _canonical(content_type)
    return (
        ct.startswith("text/")
        or ct in _TEXT_APPLICATION_TYPES
        or ct.endswith("+json")
        or ct.endswith("+xml")  # image/svg+xml, application/atom+xml…
    )


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    # final=False: the head is cut at 8 KiB and may end inside a multi-byte character.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff(head: bytes, ext: str, *, expected: str | None = None) -> str | None:
    """The content type the first bytes show, or None when they show nothing known.

    For a text extension (``expected`` text-like, or ``ext`` a known text type) UTF-8 text
    without NUL bytes counts as that type before magic bytes are tried, because some magic
    numbers are plain letters ("BM" is BMP, "GIF" is GIF, "MZ" is a Windows program) and a
    note starting "GIFs I like" is still text. A binary file is not valid UTF-8 or contains
    NULs, so a PNG renamed ``.txt`` is still caught. Other heads are matched with ``filetype``;
    text with no known magic is ``text/plain``.
    """
    text_type = expected if expected is not None and is_text_like(expected) else None
    if text_type is None and expected is None:
        guessed = _MIMETYPES.guess_type(f"x{ext.lower()}", strict=False)[0]
        text_type = guessed if guessed is not None and is_text_like(guessed) else None
    if text_type is not None and _looks_like_text(head):
        return text_type
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return _filetype_mime(kind)
    if head and _looks_like_text(head):
        return "text/plain"
    return None


def types_agree(sniffed: str | None, expected: str) -> bool:
    """Whether content sniffed as ``sniffed`` may be accepted as ``expected``."""
    want = _canonical(expected)
    if want == "application/octet-stream":
        return True  # the tool takes any bytes
    got = _canonical(sniffed) if sniffed is not None else None
    if got == want:
        return True
    if got is not None and is_text_like(got) and is_text_like(want):
        return True  # magic bytes cannot tell CSV from JSON; the tool parses it
    if got == "application/zip" and want in _ZIP_BASED:
        return True
    if want not in _SNIFFABLE and not is_text_like(want):
        # A format we have no signature for cannot be confirmed; refuse it only when the bytes
        # are clearly something else, and leave deeper checks to the tool (InvalidInput).
        return got is None or got == "text/plain"
    return False


# ---------------------------------------------------------------------------------------------
# Checking and storing


def upload_limit(tool: BaseTool) -> int:
    """The most bytes ``tool`` accepts: its own limit, never above the global one."""
    return min(tool.max_size, GLOBAL_MAX_UPLOAD)


def _match_extension(tool: BaseTool, safe_name: str) -> tuple[str, str]:
    lower = safe_name.lower()
    # The longest match wins, so a tool may accept ".tar.gz" next to ".gz".
    matches = [ext for ext in tool.accepts if lower.endswith(ext.lower()) and len(lower) > len(ext)]
    if not matches:
        accepted = ", ".join(sorted(tool.accepts))
        raise UnsupportedFileType(f"{safe_name!r} is not a file this tool accepts ({accepted})")
    ext = max(matches, key=len)
    return ext, tool.accepts[ext]


def _check(tool: BaseTool, filename: str, size: int | None) -> tuple[str, str, str, int]:
    if not tool.takes_input:
        raise NoInputExpected(tool)
    safe = sanitize_filename(filename)
    ext, expected = _match_extension(tool, safe)
    limit = upload_limit(tool)
    if size is not None:
        if size > limit:
            raise FileTooLarge(limit, size)
        if size == 0:
            raise EmptyFile()
    return safe, ext, expected, limit


def check_declared(tool: BaseTool, filename: str, size: int | None) -> str:
    """Check a declared input (name, extension, size) before its bytes arrive; the safe name.

    ``size`` may be None when the client did not say (no Content-Length); the stream's real
    size is then enforced by ``validate_and_store``.
    """
    return _check(tool, filename, size)[0]


def _chunks(source: Source | bytes) -> Iterator[bytes]:
    # bytes iterate as ints: take them as one chunk. File objects iterate by lines (maybe one
    # huge line), so read them in fixed chunks instead.
    if isinstance(source, bytes | bytearray | memoryview):
        return iter([bytes(source)] if source else [])
    read = getattr(source, "read", None)
    if read is not None:
        return iter(lambda: read(CHUNK_SIZE), b"")
    return (bytes(chunk) for chunk in source if chunk)


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

    Refusals happen before anything is written, except "too large" without a declared size,
    which the blob store detects mid-stream and cleans up after itself.
    """
    safe, ext, expected, limit = _check(tool, filename, declared_size)
    chunks = _chunks(source)
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
            max_size=limit,
        )
    except BlobTooLarge as exc:
        raise FileTooLarge(limit) from exc
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
    "check_declared",
    "is_text_like",
    "sanitize_filename",
    "sniff",
    "types_agree",
    "upload_limit",
    "validate_and_store",
]
