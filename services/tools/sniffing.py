"""Content sniffing: what the first bytes of a file show it to be, and whether that agrees
with the type its extension claims.

Only the first ``HEAD_SIZE`` bytes are looked at. ``sniff`` names the format those bytes show;
``types_agree`` decides whether that may be accepted as the type a tool declared for the file's
extension (a text file renamed ``.png`` may not; CSV as JSON may, since no magic tells them apart).
"""

from __future__ import annotations

import codecs
import mimetypes

import filetype
from filetype.types.base import Type as FileKind

# filetype never looks past 8 KiB, so neither do we before deciding.
HEAD_SIZE = 8 * 1024


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


__all__ = ["HEAD_SIZE", "is_text_like", "sniff", "types_agree"]
