"""One tool worker process: started from a preloaded fork server, killed or retired, and the
size of the scratch directory its run writes to (what the pool's supervisor watches)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from services.workers import child

PRELOAD = [
    "services.workers.child",
    "services.tools.plugins.data",
    "services.tools.plugins.encoders",
    "services.tools.plugins.hashes",
    "services.tools.plugins.image",
    "services.tools.plugins.pdf",
    "services.tools.plugins.video",
]

_context_lock = threading.Lock()
_context: Any = None


def _mp_context() -> Any:
    """The forkserver context: workers fork from a clean, preloaded server process (not from
    this one, whose threads may hold locks), so a new worker is warm in milliseconds."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        return _context


class Worker:
    def __init__(self, index: int, nice: int) -> None:
        ctx = _mp_context()
        parent, kid = ctx.Pipe(duplex=True)
        self.index = index
        self.conn: Connection = parent
        self.process = ctx.Process(
            target=child.main, args=(kid, nice), name=f"tool-worker-{index}", daemon=True
        )
        self.process.start()
        kid.close()
        self.runs = 0
        self.pid: int = self.process.pid or 0

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.pid > 0 and self.process.exitcode is None:  # never a group (0) or a reused pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.join(5)
        self.conn.close()

    def retire(self) -> None:
        """Let it finish: closing the pipe ends its loop."""
        self.conn.close()
        self.process.join(2)
        if self.process.is_alive():
            self.kill()


def scratch_size(path: str) -> int:
    """Bytes in the files under ``path`` (0 when it is gone)."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += scratch_size(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        return 0
    return total
