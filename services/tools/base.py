"""The tool framework: what a tool declares about itself and what it gets when it runs.

A tool is a subclass of ``BaseTool`` with class attributes for its metadata and a ``run(ctx)``
method. ``run`` reads its input from ``ctx.input``, reports progress through ``ctx.progress``,
checks ``ctx.check_cancelled()`` between steps of long work, keeps scratch files in
``ctx.temp_dir`` and hands its one result to ``ctx.output`` (a file or a short text). It raises a
``ToolError`` (usually ``InvalidInput``) for input it cannot process; the runner turns that into a
``Failed`` event with the error's stable ``code``. Tools do no I/O beyond their context.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

MB = 1024 * 1024
GLOBAL_MAX_UPLOAD = 500 * MB
MAX_INLINE_RESULT = 64 * 1024  # characters of an inline result (Completed.result's max_length)

# The limits a run gets when its tool declares none (the runner enforces them: README "Limits").
SYNC_TIME_LIMIT = timedelta(seconds=10)  # a sync tool's run is part of a request
ASYNC_TIME_LIMIT = timedelta(minutes=5)
DEFAULT_MAX_MEMORY = 1024 * MB  # address space the tool may add to its worker's
DEFAULT_MAX_OUTPUT = 100 * MB  # the output file (or text), checked while it is written
DEFAULT_MAX_SCRATCH = 1024 * MB  # everything in the run's scratch directory at once


def derived_name(filename: str, tag: str, ext: str, fallback: str = "output") -> str:
    """``photo.png`` → ``photo-rotated.png``: a download is named after its upload."""
    stem = Path(filename).stem or fallback
    return f"{stem}-{tag}{ext}"


class ToolError(Exception):
    """A tool run that cannot succeed; ``code`` is stable and ends up in the ``Failed`` event."""

    code = "tool_error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class InvalidInput(ToolError):
    """The input is not something this tool can process (corrupt, wrong format, bad content)."""

    code = "invalid_input"


class InvalidParams(ToolError):
    code = "invalid_params"


class ToolCancelled(ToolError):
    """The owner cancelled the execution while the tool ran (raised by ``check_cancelled``)."""

    code = "cancelled"


class OutputTooLarge(ToolError):
    """The output would pass the tool's ``max_output``: raised before the work when a tool can
    tell from its input (pages, pixels), and by the runner when a write passes the limit."""

    code = "output_too_large"


class TransientToolError(ToolError):
    """Something outside the tool failed for now (a busy resource): worth another attempt."""

    code = "transient_error"
    retryable = True


class OutputKind(StrEnum):
    FILE = "file"  # a file in the ``processed`` container
    TEXT = "text"  # a short inline result (at most 64 KiB), e.g. a hash or base64 text


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaseTool:
    """Subclass, set the metadata, implement ``run``. Instances are stateless and shared."""

    slug: ClassVar[str]  # unique, URL-safe: "image-rotate"
    name: ClassVar[str]  # "Rotate image"
    category: ClassVar[str]  # "image", "pdf", "video", "encoders", "data" (routes Event Grid)
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1.0.0"
    mode: ClassVar[Literal["sync", "async"]] = "sync"
    Params: ClassVar[type[BaseModel]] = NoParams
    # Accepted input files: extension (lower case, with dot) → content type. Empty: no input
    # file; the tool works from its params alone.
    accepts: ClassVar[dict[str, str]] = {}
    max_size: ClassVar[int] = GLOBAL_MAX_UPLOAD  # the tool's own limit (never above global)
    # One attempt's wall-clock limit (and deadline): 10 s for a sync tool, 5 minutes for an
    # async one, unless the tool says otherwise.
    timeout: ClassVar[timedelta]
    cpu_limit: ClassVar[timedelta | None] = None  # CPU seconds of one attempt; None: timeout
    max_memory: ClassVar[int] = DEFAULT_MAX_MEMORY
    max_output: ClassVar[int] = DEFAULT_MAX_OUTPUT
    max_scratch: ClassVar[int] = DEFAULT_MAX_SCRATCH
    max_attempts: ClassVar[int] = 3
    output: ClassVar[OutputKind] = OutputKind.FILE
    _timeout_declared: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "timeout" in cls.__dict__:
            cls._timeout_declared = True
        elif not getattr(cls, "_timeout_declared", False):
            cls.timeout = SYNC_TIME_LIMIT if cls.mode == "sync" else ASYNC_TIME_LIMIT

    @property
    def cpu_time_limit(self) -> timedelta:
        return self.cpu_limit if self.cpu_limit is not None else self.timeout

    @property
    def takes_input(self) -> bool:
        return bool(self.accepts)

    @property
    def upload_limit(self) -> int:
        """The most bytes this tool accepts: its own limit, never above the global one."""
        return min(self.max_size, GLOBAL_MAX_UPLOAD)

    def run(self, ctx: ToolContext) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The metadata as plain data (API, registry listings)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "version": self.version,
            "mode": self.mode,
            "params_schema": self.Params.model_json_schema(),
            "accepts": dict(self.accepts),
            "max_size": self.upload_limit,
            "timeout_s": int(self.timeout.total_seconds()),
            "limits": {
                "time_s": self.timeout.total_seconds(),
                "cpu_s": self.cpu_time_limit.total_seconds(),
                "memory": self.max_memory,
                "output": self.max_output,
                "scratch": self.max_scratch,
            },
            "max_attempts": self.max_attempts,
            "output": self.output.value,
        }


_names = itertools.count()


class ScratchDir:
    """A temp directory made on first use: most quick tools never need one, and making and
    removing a directory costs more than a no-op tool's whole run. ``at`` fixes where it will
    be (a supervisor names it, the worker process that runs the tool makes it if it must)."""

    def __init__(
        self, parent: Path | None = None, prefix: str = "mt-", *, at: Path | None = None
    ) -> None:
        self._parent = parent
        self._prefix = prefix
        self._at = at
        self._path: Path | None = None

    @property
    def location(self) -> Path:
        """Where the directory is or will be, without making it."""
        if self._at is None:
            self._at = Path(self._parent or tempfile.gettempdir()) / (
                f"{self._prefix}{os.getpid()}-{next(_names)}"
            )
        return self._path or self._at

    @property
    def path(self) -> Path:
        if self._path is None:
            if self._at is not None:
                self._at.mkdir(parents=True, exist_ok=True)
                self._path = self._at
            else:
                self._path = Path(tempfile.mkdtemp(prefix=self._prefix, dir=self._parent))
        return self._path

    def cleanup(self) -> None:
        target = self._path or self._at
        if target is not None and os.path.lexists(target):
            shutil.rmtree(target, ignore_errors=True)


def _dir(where: Path | ScratchDir) -> Path:
    return where.path if isinstance(where, ScratchDir) else where


@dataclass
class InputFile:
    """The execution's uploaded file, read as a stream (it may live in Azure)."""

    filename: str
    size: int
    content_type: str
    _chunks: Callable[[], Iterator[bytes]]
    _temp_dir: Path | ScratchDir
    _path: Path | None = None

    def chunks(self) -> Iterator[bytes]:
        return self._chunks()

    def read(self) -> bytes:
        """The whole file in memory: only for tools whose inputs are small (max_size says so)."""
        return b"".join(self._chunks())

    def path(self) -> Path:
        """The file on local disk (copied into the temp dir once), for libraries that need one."""
        if self._path is None:
            suffix = Path(self.filename).suffix
            target = _dir(self._temp_dir) / f"input{suffix}"
            with target.open("wb") as out:
                for chunk in self._chunks():
                    out.write(chunk)
            self._path = target
        return self._path

    def open(self) -> BinaryIO:
        return self.path().open("rb")


@dataclass
class Output:
    """What a tool produced: exactly one of a file (path on disk) or a text."""

    path: Path | None = None
    filename: str | None = None
    content_type: str | None = None
    text: str | None = None


class OutputSink:
    """Where a tool hands its result. Set it once."""

    def __init__(self, temp_dir: Path | ScratchDir) -> None:
        self._temp_dir = temp_dir
        self.result: Output | None = None

    def _set(self, output: Output) -> None:
        if self.result is not None:
            raise RuntimeError("a tool produces one output; this one was set already")
        self.result = output

    def file(self, path: Path, filename: str, content_type: str) -> None:
        """A file the tool wrote (anywhere; usually in ``ctx.temp_dir``)."""
        self._set(Output(path=Path(path), filename=filename, content_type=content_type))

    def bytes(self, data: bytes, filename: str, content_type: str) -> None:
        path = _dir(self._temp_dir) / f"output-{len(data)}.bin"
        path.write_bytes(data)
        self._set(Output(path=path, filename=filename, content_type=content_type))

    def text(self, text: str) -> None:
        self._set(Output(text=text))


@dataclass
class ToolContext:
    params: BaseModel
    input: InputFile | None
    scratch: Path | ScratchDir  # ``temp_dir``: made on first use when a ScratchDir
    output: OutputSink
    report_progress: Callable[[float, str], None] = field(default=lambda percent, message: None)
    is_cancelled: Callable[[], bool] = field(default=lambda: False)

    @property
    def temp_dir(self) -> Path:
        """A private scratch directory, removed after the run."""
        return _dir(self.scratch)

    def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0..100). Cheap to call often: the runner throttles what it records."""
        self.report_progress(max(0.0, min(100.0, float(percent))), message)

    def cancelled(self) -> bool:
        return self.is_cancelled()

    def check_cancelled(self) -> None:
        if self.is_cancelled():
            raise ToolCancelled("the execution was cancelled")

    def require_input(self) -> InputFile:
        if self.input is None:
            raise InvalidInput("this tool needs an input file")
        return self.input


def local_context(
    params: BaseModel,
    temp_dir: Path,
    input_path: Path | None = None,
    content_type: str = "application/octet-stream",
) -> ToolContext:
    """A context over a local file: for tests and command-line use of a single tool."""
    input_file = None
    if input_path is not None:
        src = Path(input_path)

        def chunks() -> Iterator[bytes]:
            with src.open("rb") as f:
                while chunk := f.read(MB):
                    yield chunk

        input_file = InputFile(src.name, src.stat().st_size, content_type, chunks, temp_dir)
    return ToolContext(
        params=params, input=input_file, scratch=temp_dir, output=OutputSink(temp_dir)
    )


__all__ = [
    "GLOBAL_MAX_UPLOAD",
    "MAX_INLINE_RESULT",
    "MB",
    "BaseTool",
    "InputFile",
    "InvalidInput",
    "InvalidParams",
    "NoParams",
    "Output",
    "OutputKind",
    "OutputSink",
    "OutputTooLarge",
    "ScratchDir",
    "ToolCancelled",
    "ToolContext",
    "ToolError",
    "TransientToolError",
    "derived_name",
    "local_context",
]
