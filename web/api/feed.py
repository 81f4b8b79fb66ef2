"""The event feed's one read: what ``GET /api/v1/events/`` shows a user after a position.

The view (``web.api.views.EventFeed``), the fast path (``web.api.fastpath``, which answers a
long poll's reads without Django) and the edge's watcher (``web.gate``) read the feed the same
way, through ``page`` and the one cache of owners here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from rest_framework.renderers import JSONRenderer

from events.envelope import EXECUTION_STREAM_PREFIX, RecordedEvent
from web.parts import parts

_renderer = JSONRenderer()


class _Owners:
    """execution id → owner, remembered: an execution's owner never changes."""

    def __init__(self, size: int = 50_000) -> None:
        self._known: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def owner(self, event: RecordedEvent) -> str | None:
        execution_id = event.stream[len(EXECUTION_STREAM_PREFIX) :]
        with self._lock:
            owner = self._known.get(execution_id)
        if owner is None:
            first = parts().store.read_stream(event.stream)[:1]
            if not first or not first[0].type.endswith(".Submitted"):
                return None
            owner = str(first[0].data.get("owner"))
            self._remember(execution_id, owner)
        return owner

    def learn(self, event: RecordedEvent) -> None:
        if event.type.endswith(".Submitted"):
            self._remember(event.stream[len(EXECUTION_STREAM_PREFIX) :], str(event.data["owner"]))

    def _remember(self, execution_id: str, owner: str) -> None:
        with self._lock:
            self._known[execution_id] = owner
            if len(self._known) > self._size:
                self._known.popitem(last=False)


OWNERS = _Owners()


class Page(NamedTuple):
    events: list[dict[str, Any]]  # what the user sees, as CloudEvents
    next_after: int  # the position to read on from
    head: int  # the store's head when read
    read: int  # how many of the executions' events were read (``limit`` at most)


def owned(after: int, limit: int) -> list[tuple[RecordedEvent, str | None]]:
    """The executions' events after ``after`` (``limit`` at most), each with its owner."""
    batch = parts().store.read_all(after, limit, stream_prefix=EXECUTION_STREAM_PREFIX)
    for event in batch:
        OWNERS.learn(event)
    return [(event, OWNERS.owner(event)) for event in batch]


def page(after: int, limit: int, owner: str | None) -> Page:
    """One read of the feed after ``after``: the events ``owner`` sees (None: everyone's)."""
    batch = owned(after, limit)
    visible = [e.to_cloudevent() for e, theirs in batch if owner is None or theirs == owner]
    next_after = batch[-1][0].position if batch else after
    return Page(visible, next_after, parts().store.head_position(), len(batch))


def render(events: list[dict[str, Any]], next_after: int, head: int) -> bytes:
    """The feed's answer body, byte for byte as the view's renderer writes it."""
    return _renderer.render({"events": events, "next_after": next_after, "head": head})
