"""Uploads streamed from the socket to blob storage: written once.

Django's ASGI handler writes a whole request body to a temporary file before any view runs, and
its multipart parser then writes each file to another one; the blob store writes a third copy.
For ``POST /api/v1/executions/`` none of that happens here:

* ``EdgeASGIHandler`` hands the request a ``BodyPipe`` instead of a spooled file: the view's thread
  reads the body as it arrives, a few chunks ahead at most (the pump waits for the reader), so
  authentication, permissions and rate limits (DRF's ``initial()``) run before the body is read.
* ``StreamingMultiPartParser`` (the API's multipart parser) reads the form fields, which come
  before the file, and hands the file on as a ``StreamedFile`` whose ``chunks()`` read on from the
  request: the blob store's write is the only one.

The file must be the form's last part (as browsers, curl ``-F`` in order, and httpx send it); a
field after it is refused with ``field_after_file``. Non-file fields are small: together at most
``MAX_FIELDS_BYTES``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.handlers.asgi import ASGIHandler
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from django.utils.http import parse_header_parameters
from rest_framework.parsers import BaseParser, DataAndFiles

from services.problems import Problem

CHUNK = 256 * 1024
AHEAD = 4  # body messages the pump may read before the view takes them
MAX_FIELDS_BYTES = 1024 * 1024
MAX_HEADERS_BYTES = 16 * 1024
STREAMED = "magictoolbox.streamed_body"  # scope key: this request's body is piped, not spooled

_EOF = object()


class BodyPipe:
    """A request body read by a sync thread as the event loop receives it.

    ``pump()`` runs on the loop: it takes ``http.request`` messages from the server only while
    the reader keeps up (``AHEAD``), then waits for the client to go away, which is what
    Django's ``listen_for_disconnect`` awaits through ``receive_after_body``.
    """

    def __init__(self, receive: Callable[[], Any]) -> None:
        self._receive = receive
        self._chunks: queue.Queue[Any] = queue.Queue()
        self._credits = asyncio.Semaphore(AHEAD)
        self._loop = asyncio.get_running_loop()
        self._disconnected: asyncio.Future[None] = self._loop.create_future()
        self._buffer = b""
        self._ended = False
        self._lock = threading.Lock()

    async def pump(self) -> None:
        try:
            while True:
                await self._credits.acquire()
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self._chunks.put(OSError("the client went away mid-upload"))
                    break
                self._chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    self._chunks.put(_EOF)
                    while (await self._receive())["type"] != "http.disconnect":
                        pass
                    break
        finally:
            if not self._disconnected.done():
                self._disconnected.set_result(None)

    async def receive_after_body(self) -> dict[str, Any]:
        await self._disconnected
        return {"type": "http.disconnect"}

    # -- the file-like side (the view's thread) --------------------------------------------------

    def _next(self) -> bytes | None:
        if self._ended:
            return None
        item = self._chunks.get()
        self._loop.call_soon_threadsafe(self._credits.release)
        if item is _EOF:
            self._ended = True
            return None
        if isinstance(item, Exception):
            self._ended = True
            raise item
        return item

    def read(self, size: int = -1) -> bytes:
        with self._lock:
            while size < 0 or len(self._buffer) < size:
                chunk = self._next()
                if chunk is None:
                    break
                self._buffer += chunk
            if size < 0:
                data, self._buffer = self._buffer, b""
            else:
                data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data

    def readline(self, size: int = -1) -> bytes:  # Django's form parser reads lines
        with self._lock:
            while b"\n" not in self._buffer:
                chunk = self._next()
                if chunk is None:
                    break
                self._buffer += chunk
            end = self._buffer.find(b"\n") + 1 or len(self._buffer)
            data, self._buffer = self._buffer[:end], self._buffer[end:]
            return data

    def seek(self, *args: Any) -> None:  # Django rewinds a spooled body; ours is read once
        return None

    def close(self) -> None:
        return None


class EdgeASGIHandler(ASGIHandler):
    """Django's ASGI handler, but a request marked ``STREAMED`` in its scope gets its body
    piped to the view instead of spooled to a file first."""

    async def handle(self, scope: dict, receive: Any, send: Any) -> None:
        if not scope.get(STREAMED):
            await super().handle(scope, receive, send)
            return
        pipe = BodyPipe(receive)
        pump = asyncio.create_task(pipe.pump())
        piped = _PipedReceive(pipe)
        try:
            await super().handle(scope, piped, send)
        finally:
            pump.cancel()

    async def read_body(self, receive: Any) -> Any:
        if isinstance(receive, _PipedReceive):
            return receive.pipe
        return await super().read_body(receive)


class _PipedReceive:
    def __init__(self, pipe: BodyPipe) -> None:
        self.pipe = pipe

    async def __call__(self) -> dict[str, Any]:
        return await self.pipe.receive_after_body()


# -- the multipart parser --------------------------------------------------------------------------


class StreamedFile(UploadedFile):
    """A form's file part, read from the request as its ``chunks()`` are taken (once)."""

    def __init__(self, reader: _MultipartReader, name: str, content_type: str, size: int | None):
        super().__init__(None, name, content_type, size)
        self._reader = reader
        self._taken = False

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        if self._taken:
            raise ValueError("a streamed upload can be read once")
        self._taken = True
        yield from self._reader.part_body()
        self._reader.finish()

    def read(self, *args: Any) -> bytes:  # pragma: no cover - nothing reads it whole
        return b"".join(self.chunks())

    def multiple_chunks(self, chunk_size: int | None = None) -> bool:
        return True

    def close(self) -> None:
        return None


class _MultipartReader:
    """A pull parser of ``multipart/form-data``: parts in order, a part's body as it comes."""

    def __init__(self, stream: Any, boundary: bytes) -> None:
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary
        self._buffer = b"\r\n"  # the first delimiter has no CRLF of its own
        self._eof = False
        self.consumed = 0

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(CHUNK)
        if not chunk:
            self._eof = True
            return False
        self.consumed += len(chunk)
        self._buffer += chunk
        return True

    def start(self) -> None:
        """Skip the preamble up to the first delimiter."""
        while (at := self._buffer.find(self._delimiter)) < 0:
            self._buffer = self._buffer[-len(self._delimiter) :]
            if not self._fill():
                raise Problem("invalid_multipart", "the form has no parts")
        self._buffer = self._buffer[at + len(self._delimiter) :]

    def next_headers(self) -> dict[str, str] | None:
        """After a delimiter: the next part's headers, or None at the closing one."""
        while len(self._buffer) < 2 and self._fill():
            pass
        if self._buffer.startswith(b"--"):
            return None
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEADERS_BYTES or not self._fill():
                raise Problem("invalid_multipart", "a form part's headers do not end")
        raw, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        headers = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip().lower()] = value.strip()
        return headers

    def part_body(self) -> Iterator[bytes]:
        """The current part's body, chunk by chunk, up to (and past) the next delimiter."""
        keep = len(self._delimiter) - 1
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                data, self._buffer = self._buffer[:at], self._buffer[at + len(self._delimiter) :]
                if data:
                    yield data
                return
            if len(self._buffer) > keep:
                data, self._buffer = self._buffer[:-keep], self._buffer[-keep:]
                yield data
            if not self._fill():
                raise Problem("invalid_multipart", "the form ends inside a part")

    def finish(self) -> None:
        """After the file: only the closing delimiter may follow."""
        headers = self.next_headers()
        if headers is not None:
            raise Problem("field_after_file", "the file must be the form's last part")


class StreamingMultiPartParser(BaseParser):
    """``multipart/form-data`` whose file is streamed on, not stored first (see the module)."""

    media_type = "multipart/form-data"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        _, params = parse_header_parameters(media_type or "")
        boundary = params.get("boundary", "")
        if not boundary or len(boundary) > 200:
            raise Problem("invalid_multipart", "the multipart form has no boundary")
        request = (parser_context or {}).get("request")
        declared = _declared_length(request)
        reader = _MultipartReader(stream, boundary.encode("latin-1"))
        data = QueryDict(mutable=True)
        files: MultiValueDict = MultiValueDict()
        reader.start()
        fields_bytes = 0
        while (headers := reader.next_headers()) is not None:
            _, disposition = parse_header_parameters(headers.get("content-disposition", ""))
            name = disposition.get("name")
            if name is None:  # as Django's parser does: a part without a name is no field
                for chunk in reader.part_body():
                    fields_bytes = _counted(fields_bytes, chunk)
                continue
            if "filename" in disposition:
                size = None
                if declared is not None:  # the rest of the body, less the closing delimiter
                    closing = len(b"\r\n--" + boundary.encode("latin-1") + b"--\r\n")
                    size = max(declared - reader.consumed + len(reader._buffer) - closing, 0)
                if "tool" not in data:
                    raise Problem(
                        "field_after_file",
                        "the file must be the form's last part: send tool and params first",
                    )
                content_type = headers.get("content-type", "application/octet-stream")
                files[name] = StreamedFile(reader, disposition["filename"], content_type, size)
                break
            value = b""
            for chunk in reader.part_body():
                value += chunk
                fields_bytes = _counted(fields_bytes, chunk)
            data.appendlist(name, value.decode("utf-8", "replace"))
        data._mutable = False
        return DataAndFiles(data, files)


def _counted(fields_bytes: int, chunk: bytes) -> int:
    """The fields' bytes so far with ``chunk``; past ``MAX_FIELDS_BYTES``, a 413 problem."""
    fields_bytes += len(chunk)
    if fields_bytes > MAX_FIELDS_BYTES:
        raise Problem(
            "fields_too_large", f"the form's fields are limited to {MAX_FIELDS_BYTES} bytes", 413
        )
    return fields_bytes


def _declared_length(request: Any) -> int | None:
    length = getattr(request, "META", {}).get("CONTENT_LENGTH") if request is not None else None
    return int(length) if length and str(length).isdigit() else None
