"""Hash tools: the hex digest of a text or of an uploaded file, with a choice of algorithm.

``hash-text`` hashes the UTF-8 bytes of its ``text`` parameter; ``hash-file`` streams the uploaded
file through ``hashlib`` chunk by chunk, so a 100 MB file never sits in memory whole. Both answer
inline with the lower-case hex digest.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.tools.base import MB, BaseTool, OutputKind, ToolContext

Algorithm = Literal["md5", "sha1", "sha256", "sha512", "blake2b"]


class HashTextParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MB, description="The text to hash (as UTF-8).")
    algorithm: Algorithm = "sha256"


class HashFileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Algorithm = "sha256"


class HashText(BaseTool):
    slug = "hash-text"
    name = "Hash a text"
    category = "encoders"
    description = "The hex digest of a text (UTF-8): MD5, SHA-1, SHA-256, SHA-512 or BLAKE2b."
    mode = "sync"
    Params = HashTextParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: HashTextParams = ctx.params  # type: ignore[assignment]
        digest = hashlib.new(params.algorithm, params.text.encode("utf-8"))
        ctx.output.text(digest.hexdigest())


class HashFile(BaseTool):
    slug = "hash-file"
    name = "Hash a file"
    category = "encoders"
    description = "The hex digest of a file: MD5, SHA-1, SHA-256, SHA-512 or BLAKE2b."
    mode = "sync"
    Params = HashFileParams
    accepts: ClassVar[dict[str, str]] = {
        ".txt": "text/plain",
        ".bin": "application/octet-stream",
        ".pdf": "application/pdf",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".zip": "application/zip",
    }
    max_size = 100 * MB
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: HashFileParams = ctx.params  # type: ignore[assignment]
        source = ctx.require_input()
        digest = hashlib.new(params.algorithm)
        done = 0
        for chunk in source.chunks():
            ctx.check_cancelled()
            digest.update(chunk)
            done += len(chunk)
            if source.size:
                ctx.progress(100 * done / source.size, "hashing")
        ctx.output.text(digest.hexdigest())
