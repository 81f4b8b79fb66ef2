"""Waking readers in other processes when events are appended to PostgreSQL: LISTEN/NOTIFY.

Appends in this process wake its own waiters at once. A notifier thread tells other processes
with a NOTIFY on its own connection, outside the writing transactions (a NOTIFY inside them
would take a server-wide lock through every commit), at most every ``NOTIFY_INTERVAL`` under a
burst; a listener thread wakes this process's waiters when another process's NOTIFY arrives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from events.appending import AppendSignal

NOTIFY_INTERVAL = 0.01  # seconds: a burst of appends sends one NOTIFY per interval, not each


class Notifications:
    def __init__(self, url: str, connect_options: dict[str, Any], channel: str) -> None:
        self.url = url
        self._kwargs = connect_options
        self.channel = channel
        self.appended = AppendSignal()  # this process's waiters
        self._closed = threading.Event()
        self._notify_pending = threading.Event()
        self._notifier_pid = 0  # the backend that sends this store's NOTIFYs
        self._threads: dict[str, threading.Thread] = {}
        self._threads_lock = threading.Lock()

    def committed(self) -> None:
        """An append committed here: wake this process's waiters now, the others soon."""
        self.appended.notify()
        if "notify" not in self._threads:
            self._start("notify", self._notify_loop)
        if not self._notify_pending.is_set():
            self._notify_pending.set()

    def wait_for(
        self, head: Callable[[], int], after_position: int, timeout: float, poll_interval: float
    ) -> bool:
        """Until ``head()`` passes ``after_position`` or ``timeout`` passes; woken by appends
        here and elsewhere, and asking at least every ``poll_interval`` (an older transaction
        that held the feed back and then rolled back notifies nobody)."""
        self._start("listen", self._listen_loop)
        return self.appended.wait_for(head, after_position, timeout, poll_interval)

    def close(self) -> None:
        self._closed.set()
        self._notify_pending.set()
        for thread in list(self._threads.values()):
            thread.join(timeout=5)

    def _start(self, name: str, target: Callable[[], None]) -> None:
        with self._threads_lock:
            if name not in self._threads and not self._closed.is_set():
                thread = threading.Thread(target=target, name=f"{self.channel}-{name}", daemon=True)
                self._threads[name] = thread
                thread.start()

    def _notify_loop(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._closed.is_set():
            self._notify_pending.wait()
            if self._closed.is_set():
                break
            self._notify_pending.clear()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, **self._kwargs)
                    self._notifier_pid = conn.info.backend_pid
                conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
            except psycopg.Error:
                conn = None
                self._notify_pending.set()
                self._closed.wait(0.5)
            self._closed.wait(NOTIFY_INTERVAL)
        if conn is not None:
            conn.close()

    def _listen_loop(self) -> None:
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, **self._kwargs) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    while not self._closed.is_set():
                        for notify in conn.notifies(timeout=0.5, stop_after=1):
                            if notify.pid == self._notifier_pid:
                                continue  # our own appends woke our waiters when they committed
                            self.appended.notify()
            except psycopg.Error:
                time.sleep(0.5)
