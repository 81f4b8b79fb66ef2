"""What a run may take, and the stable codes of a run that took more.

The runner enforces every limit itself; a tool's good manners are not needed:

- wall-clock time: the supervising thread kills the worker at the deadline (``time_limit``);
- CPU time: ``RLIMIT_CPU`` in the worker, the kernel ends it with SIGXCPU (``time_limit``);
- memory: ``RLIMIT_AS`` above the worker's own size (an allocation fails: ``memory_limit``) and
  the worker's resident size, polled (killed: ``memory_limit``);
- output: ``RLIMIT_FSIZE``, so no file the tool writes passes ``max_output`` while it is written,
  and the text of a text result (``output_too_large``);
- scratch disk: the run's scratch directory, polled (killed: ``disk_limit``).

None of these is worth retrying: the same input hits the same limit. A worker that dies for any
other reason (killed from outside, its process gone) is ``worker_lost``, and that is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.tools.base import BaseTool

TIME_LIMIT = "time_limit"
MEMORY_LIMIT = "memory_limit"
OUTPUT_TOO_LARGE = "output_too_large"
DISK_LIMIT = "disk_limit"
WORKER_LOST = "worker_lost"

# Whether another attempt could help, by code (a code not here is decided by whoever raised it).
RETRYABLE = {
    TIME_LIMIT: False,
    MEMORY_LIMIT: False,
    OUTPUT_TOO_LARGE: False,
    DISK_LIMIT: False,
    WORKER_LOST: True,
}


@dataclass(frozen=True, slots=True)
class Limits:
    time_s: float
    cpu_s: float
    memory: int  # bytes the run may add to its worker
    output: int  # bytes of any one file it writes, or of its text result
    scratch: int  # bytes in its scratch directory at once

    @classmethod
    def of(cls, tool: BaseTool) -> Limits:
        return cls(
            time_s=tool.timeout.total_seconds(),
            cpu_s=tool.cpu_time_limit.total_seconds(),
            memory=tool.max_memory,
            output=tool.max_output,
            scratch=tool.max_scratch,
        )


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"
