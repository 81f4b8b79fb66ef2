"""PostgreSQL connections, pooled: at most ``pool_size()`` per database and session options, per
process, whatever the number of threads asking.

Every thread of a web process may touch the database: its request threads, the fast status
path's, the Functions host's invocations (64 in flight), the projector, the webhook worker...
With a connection of its own each, the process's connections grew with its threads, and a
burst could take the server past ``max_connections`` ("too many clients") for everyone. Here
each statement (or transaction) borrows a connection from psycopg_pool's ``ConnectionPool`` and
gives it back: the process holds at most ``pool_size()`` per pool, opened as needed, and a
thread that finds them all in use waits for one as long as it would to connect
(``timeouts().connect``), then gets ``psycopg_pool.PoolTimeout``, a ``psycopg.OperationalError``:
``unavailable``, a 503. A server that cannot be reached fails the same way, in that time.

A pool is shared by everything in the process that connects with the same URL and options (the
event store's; the read models', with their own options), and closed when the last of them
closes (``release``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from events.connections import timeouts


@dataclass(frozen=True)
class PoolLimits:
    """How many connections one pool may hold."""

    size: int = 10


_limits = PoolLimits()


def pool_limits() -> PoolLimits:
    """This process's pool limits (the settings' once ``bootstrap`` ran)."""
    return _limits


def set_pool_limits(value: PoolLimits) -> None:
    """Use ``value`` for every pool opened from now on in this process."""
    global _limits
    _limits = value


_pools: dict[tuple[str, str], tuple[ConnectionPool, int]] = {}
_lock = threading.Lock()


def acquire(conninfo: str, **kwargs: Any) -> ConnectionPool:
    """The process's pool for ``conninfo`` and ``psycopg.connect`` keyword arguments
    (autocommit connections), opened on first use; ``release`` it when done."""
    key = (conninfo, repr(sorted(kwargs.items())))
    with _lock:
        found = _pools.get(key)
        if found is None or found[0].closed:
            limits = pool_limits()
            pool = ConnectionPool(
                conninfo,
                kwargs={"autocommit": True, **kwargs},
                min_size=1,
                max_size=limits.size,
                timeout=timeouts().connect,
                name=f"pool-{len(_pools)}",
                open=True,
            )
            found = (pool, 0)
        _pools[key] = (found[0], found[1] + 1)
        return found[0]


def release(pool: ConnectionPool) -> None:
    """One user of ``pool`` is done with it: closed when it was the last."""
    with _lock:
        for key, (known, users) in list(_pools.items()):
            if known is pool:
                if users <= 1:
                    del _pools[key]
                    pool.close()
                else:
                    _pools[key] = (known, users - 1)
                return
