"""The parts this web process works with: built from the settings Django was configured with
(``handlers.bootstrap``) on first use, or handed in by a test with ``serving``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from handlers.bootstrap import Parts, bootstrap

_parts: Parts | None = None
_lock = threading.Lock()


def parts() -> Parts:
    global _parts
    current = _parts
    if current is None:
        with _lock:
            if _parts is None:
                _parts = bootstrap(settings.MAGICTOOLBOX)
            current = _parts
    return current


@contextmanager
def serving(these: Parts) -> Iterator[Parts]:
    """Serve with ``these`` parts while the block runs (a test's own deployment)."""
    global _parts
    with _lock:
        previous, _parts = _parts, these
    try:
        yield these
    finally:
        with _lock:
            _parts = previous
