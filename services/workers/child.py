"""The worker process: runs one tool at a time, as the pool asks, under the run's limits.

It receives a ``Job`` on its pipe, sets the kernel's limits for it (address space, CPU time,
file size), runs the tool over local files in the run's scratch directory and answers with a
``Done``, a ``Refused`` (a ``ToolError``, a limit the tool hit in Python) or a ``Crashed``;
progress goes up the pipe as it comes. It touches no database and no blob store: the
supervising process reads the input for it and stores what it leaves. When the pool's process
dies, the kernel kills this one (``PR_SET_PDEATHSIG``), so no orphan keeps burning a core.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.tools.base import (
    MB,
    BaseTool,
    InputFile,
    Output,
    OutputSink,
    ScratchDir,
    ToolContext,
    ToolError,
)
from services.workers.limits import MEMORY_LIMIT, OUTPUT_TOO_LARGE, Limits, megabytes

PROGRESS_EVERY = 0.1  # seconds between progress messages up the pipe
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class InputSpec:
    path: str
    filename: str
    size: int
    content_type: str


@dataclass(frozen=True, slots=True)
class Job:
    tool: BaseTool  # pickled by reference to its class: the worker imports the tool's module
    params: dict[str, Any]
    input: InputSpec | None
    scratch: str  # the run's scratch directory, made by the supervisor
    limits: Limits


@dataclass(frozen=True, slots=True)
class Done:
    output: Output


@dataclass(frozen=True, slots=True)
class Refused:
    code: str
    message: str
    retryable: bool
    exit: bool = False  # the worker leaves after this run (its memory may be in a bad state)


@dataclass(frozen=True, slots=True)
class Crashed:
    message: str
    traceback: str


Answer = Done | Refused | Crashed


def main(conn: Connection, nice: int) -> None:
    """The worker's loop: one job at a time until the pipe closes."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the supervisor to handle
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails instead
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nice:
        os.nice(nice)  # the web before tools (but a request waiting on its sync run waits longer)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        answer = run(job, conn)
        try:
            conn.send(answer)
        except (BrokenPipeError, OSError):
            return
        if isinstance(answer, Refused) and answer.exit:
            return


def run(job: Job, conn: Connection | None = None) -> Answer:
    """One job, with the kernel's limits set for its duration."""
    last_sent = 0.0

    def progress(percent: float, message: str) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if conn is None or now - last_sent < PROGRESS_EVERY:
            return
        last_sent = now
        conn.send(("progress", percent, message))

    scratch = ScratchDir(at=Path(job.scratch))  # made if the tool asks for it
    tool = job.tool
    try:
        params = tool.Params.model_validate(job.params)
    except ValidationError as exc:
        return Refused("invalid_params", str(exc)[:2000], False)
    sink = LimitedSink(scratch, job.limits.output)
    ctx = ToolContext(
        params=params,
        input=_input(job.input, scratch),
        scratch=scratch,
        output=sink,
        report_progress=progress,
    )
    restore = _limit(job.limits)
    try:
        tool.run(ctx)
    except ToolError as exc:
        return Refused(exc.code, str(exc) or exc.code, exc.retryable)
    except MemoryError:
        limit = megabytes(job.limits.memory)
        return Refused(MEMORY_LIMIT, f"the run needed more than its {limit} of memory", False, True)
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            return _too_large(job.limits)
        return Crashed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    except Exception as exc:  # a bug in the tool: final, with enough to find it
        return Crashed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    finally:
        restore()
    output = sink.result
    if output is not None and output.text is not None and len(output.text) > job.limits.output:
        return _too_large(job.limits)
    return Done(output) if output is not None else Done(Output())


class LimitedSink(OutputSink):
    """An output sink that refuses bytes and text past the run's output limit before writing."""

    def __init__(self, temp_dir: Path | ScratchDir, limit: int) -> None:
        super().__init__(temp_dir)
        self.limit = limit

    def bytes(self, data: bytes, filename: str, content_type: str) -> None:
        if len(data) > self.limit:
            raise _TooLarge(self.limit)
        super().bytes(data, filename, content_type)

    def text(self, text: str) -> None:
        if len(text) > self.limit:
            raise _TooLarge(self.limit)
        super().text(text)


class _TooLarge(ToolError):
    code = OUTPUT_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"the output is larger than this tool's limit of {megabytes(limit)}")


def _too_large(limits: Limits) -> Refused:
    return Refused(OUTPUT_TOO_LARGE, str(_TooLarge(limits.output)), False)


def _input(spec: InputSpec | None, scratch: ScratchDir) -> InputFile | None:
    if spec is None:
        return None
    path = Path(spec.path)

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(MB):
                yield chunk

    return InputFile(spec.filename, spec.size, spec.content_type, chunks, scratch, path)


def _limit(limits: Limits) -> Any:
    """Set this process's limits for one run; returns what puts them back."""
    saved = {
        which: resource.getrlimit(which)
        for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE)
    }
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_used = usage.ru_utime + usage.ru_stime
    _soft(resource.RLIMIT_CPU, int(cpu_used + limits.cpu_s) + 1)
    _soft(resource.RLIMIT_AS, address_space() + limits.memory)
    _soft(resource.RLIMIT_FSIZE, limits.output)

    def restore() -> None:
        for which, (soft, hard) in saved.items():
            resource.setrlimit(which, (soft, hard))

    return restore


def _soft(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, hard))


def address_space(pid: int | str = "self") -> int:
    """The process's virtual size in bytes."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[0]) * _PAGE


def resident(pid: int) -> int:
    """The process's resident size in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's end is the only signal
        pass
