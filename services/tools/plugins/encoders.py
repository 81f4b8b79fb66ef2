"""Base64 tools: encode a text to base64 and decode base64 back to text.

Both work from their ``text`` parameter alone (no input file) and answer inline, so their sizes are
bounded by the 64 KiB an inline result may hold (``Completed.result`` in the event catalog): the
encoder takes at most 48 KiB of UTF-8 (whose base64 is exactly 64 KiB) and the decoder refuses a
result that would not fit. Decoded bytes that are not UTF-8 text are refused rather than mangled.
"""

from __future__ import annotations

import base64
import binascii
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.tools.base import MAX_INLINE_RESULT, BaseTool, InvalidInput, OutputKind, ToolContext

ENCODE_MAX_BYTES = MAX_INLINE_RESULT // 4 * 3  # base64 turns every 3 bytes into 4 characters
DECODE_MAX_CHARS = MAX_INLINE_RESULT * 2  # generous room for line breaks and multi-byte text

_STANDARD = re.compile(r"[A-Za-z0-9+/]*")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*")


class EncodeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The text to encode (UTF-8), at most 48 KiB.")
    url_safe: bool = Field(default=False, description="Use - and _ instead of + and /.")

    @field_validator("text")
    @classmethod
    def _fits_inline(cls, text: str) -> str:
        # Counted in bytes, not characters: base64 encodes the UTF-8 bytes.
        size = len(text.encode("utf-8"))
        if size > ENCODE_MAX_BYTES:
            raise ValueError(
                f"text is {size} bytes of UTF-8; at most {ENCODE_MAX_BYTES} can be encoded"
            )
        return text


class DecodeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=DECODE_MAX_CHARS, description="The base64 to decode.")
    url_safe: bool = Field(default=False, description="The input uses - and _ for + and /.")


class Base64Encode(BaseTool):
    slug = "base64-encode"
    name = "Base64 encode"
    category = "encoders"
    description = "Encode a text (UTF-8) as base64, standard or URL-safe."
    mode = "sync"
    Params = EncodeParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: EncodeParams = ctx.params  # type: ignore[assignment]
        data = params.text.encode("utf-8")
        encoded = base64.urlsafe_b64encode(data) if params.url_safe else base64.b64encode(data)
        ctx.output.text(encoded.decode("ascii"))


class Base64Decode(BaseTool):
    slug = "base64-decode"
    name = "Base64 decode"
    category = "encoders"
    description = (
        "Decode base64 (standard or URL-safe; line breaks and missing padding are fine) back to "
        "text. The decoded bytes must be UTF-8 text."
    )
    mode = "sync"
    Params = DecodeParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: DecodeParams = ctx.params  # type: ignore[assignment]
        data = decode_base64(params.text, url_safe=params.url_safe)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"decoded bytes are not text (not valid UTF-8 at byte {exc.start})"
            ) from None
        ctx.output.text(text)  # a long one becomes a file: the runner decides


def decode_base64(text: str, *, url_safe: bool) -> bytes:
    """Strict base64 decoding that tells the user what is wrong instead of guessing."""
    # Line-wrapped base64 (MIME, PEM) is common; whitespace carries no data.
    compact = "".join(text.split())
    body = compact.rstrip("=")
    if len(compact) - len(body) > 2:
        raise InvalidInput("invalid base64: too much '=' padding at the end")
    alphabet = _URL_SAFE if url_safe else _STANDARD
    if not alphabet.fullmatch(body):
        bad = next(c for c in body if not alphabet.fullmatch(c))
        hint = ""
        if not url_safe and bad in "-_":
            hint = " (it looks URL-safe: set url_safe)"
        elif url_safe and bad in "+/":
            hint = " (it looks like standard base64: unset url_safe)"
        raise InvalidInput(f"invalid base64: character {bad!r} is not in the alphabet{hint}")
    if len(body) % 4 == 1:
        raise InvalidInput("invalid base64: the length is not possible (one character too many?)")
    # Padding is often dropped (JWTs, URLs); it is fully determined by the length, so restore it.
    padded = body + "=" * (-len(body) % 4)
    try:
        if url_safe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"invalid base64: {exc}") from None
