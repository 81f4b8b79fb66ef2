"""Live updates: the projector's changes pushed to browsers over SSE (django-eventstream).

After the status projection commits a batch, ``publish`` sends each changed execution, as the
API shows it, on two channels: ``user-<pk>`` (all of a user's executions: the tool page's status
panel and history) and ``execution-<id>`` (one execution: its page, which also receives each
event for the timeline). ``ChannelManager`` lets a user read only their own channels. Without
``EVENTSTREAM_REDIS`` an event reaches the browsers connected to this process only, which is why
the embedded default runs the projector in the web process; the UI also polls as a fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.conf import settings
from django_eventstream import send_event
from django_eventstream.channelmanager import ChannelManagerBase
from django_eventstream.views import get_listener_manager

from events.database import Database
from events.envelope import RecordedEvent
from projections import status as status_model
from projections.projection import execution_events
from services.problems import Problem
from web import executions

log = logging.getLogger(__name__)

USER_PREFIX = "user-"
EXECUTION_PREFIX = "execution-"


def user_channel(owner: str) -> str:
    return f"{USER_PREFIX}{owner}"


def execution_channel(execution_id: str | UUID) -> str:
    return f"{EXECUTION_PREFIX}{execution_id}"


def _listening() -> set[str] | None:
    """The channels someone in this process listens to; None (all) when Redis shares them."""
    if getattr(settings, "EVENTSTREAM_REDIS", None):
        return None
    return set(get_listener_manager().listeners_by_channel)


def publish(projection: str, events: Sequence[RecordedEvent], db: Database) -> None:
    """The projector's ``on_applied``: push what the status projection just committed.

    Nothing is built for channels nobody listens to (most API clients never open a stream).
    """
    if projection != status_model.PROJECTION.name:
        return
    listening = _listening()
    if listening is not None and not listening:
        return

    def heard(channel: str) -> bool:
        return listening is None or channel in listening

    changed: dict[str, None] = {}
    for e in execution_events(events):
        changed[e.execution_id] = None
        channel = execution_channel(e.execution_id)
        if heard(channel):
            send_event(channel, "event", executions.timeline_entry(e.event))
    for execution in status_model.get_many(db, list(changed)):
        channels = [user_channel(execution.owner), execution_channel(execution.execution_id)]
        channels = [c for c in channels if heard(c)]
        if channels:
            data = executions.represent(execution)
            for channel in channels:
                send_event(channel, "status", data)


class ChannelManager(ChannelManagerBase):
    """Which channels a request listens to, and who may read them."""

    def get_channels_for_request(self, request: Any, view_kwargs: dict[str, Any]) -> set[str]:
        if "execution_id" in view_kwargs:
            return {execution_channel(view_kwargs["execution_id"])}
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return {user_channel(executions.owner_of(user))}
        return {user_channel("anonymous")}  # refused by can_read_channel

    def can_read_channel(self, user: Any, channel: str) -> bool:
        if user is None or not user.is_authenticated:
            return False
        if channel.startswith(USER_PREFIX):
            return channel == user_channel(executions.owner_of(user))
        if channel.startswith(EXECUTION_PREFIX):
            try:
                executions.get(user, UUID(channel[len(EXECUTION_PREFIX) :]))
            except (ValueError, Problem):
                return False
            return True
        return False

    def is_channel_reliable(self, channel: str) -> bool:
        return False  # no event storage: a client that missed something re-reads the API
