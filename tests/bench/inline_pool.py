"""A bench-only fake of ``WorkerPool``: every slot runs its job in the calling thread.

This is the inline path from before tool runs were contained, kept as the baseline of the
contained-runs benchmark. The runner, the actions, the service and the store are the real ones;
only where the tool runs differs: ``services.workers.child.run(job)``, the very function a
worker process calls, here in the caller's thread (it sets the kernel's limits around the run
and restores them, as in a worker: a few system calls). Nothing is supervised: no deadline, no
memory or scratch checks, no cancel; never use it outside a benchmark.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from services.workers import child
from services.workers.child import Answer, Job


class InlineSlot:
    """What ``ToolRunner`` uses of a ``Slot``: ``worker_id``, ``run`` and ``release``."""

    def __init__(self, process_id: str) -> None:
        self.worker_id = f"{process_id}/{os.getpid()}"

    def run(
        self,
        job: Job,
        *,
        deadline: float,
        on_progress: Callable[[float, str], None] = lambda percent, message: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Answer:
        return child.run(job)  # Done | Refused | Crashed: a part of the pool's Result

    def release(self) -> None:
        pass


class InlinePool:
    """What ``ToolRunner`` uses of a ``WorkerPool``: ``acquire``. There is never a wait."""

    def __init__(self, process_id: str) -> None:
        self.process_id = process_id

    def acquire(
        self,
        owner: str,
        *,
        sync: bool = False,
        timeout: float | None = None,
        budget: float | None = None,
    ) -> InlineSlot:
        return InlineSlot(self.process_id)
