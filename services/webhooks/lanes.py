"""A lane: one endpoint's deliveries, claimed a few at a time and sent in parallel.

Each endpoint with messages due gets a lane with at most ``per_endpoint`` requests in flight (and
the round's ``max_in_flight`` in all), so a slow endpoint only ever holds up itself. A lane claims
a few slots' worth at once (``PREFETCH``) with a lease, reads its endpoint again every
``ENDPOINT_TTL`` (its URL or secrets may have changed), and gives back what it did not send when
it ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.database import Database
from services.webhooks import endpoints, messages
from services.webhooks.delivery import Deliveries, Round
from services.webhooks.endpoints import Endpoint
from services.webhooks.messages import Message

log = logging.getLogger(__name__)

PREFETCH = 4  # claims take this many slots' worth of messages at once
ENDPOINT_TTL = 1.0  # seconds an endpoint's row is trusted before it is read again
LANE_BACKOFF = 1.0  # a lane whose claim failed ends after this, so a broken one never spins


@dataclass
class Lane:
    endpoint_id: str
    kick: asyncio.Event = field(default_factory=asyncio.Event)  # more may be due: claim again
    closed: bool = False  # the endpoint is gone or off: claim nothing more
    # Claimed ahead, sent as slots free: one claim serves several deliveries. Their lease
    # (minutes) outlasts the wait; a lane that stops gives them back (messages.release).
    claimed: collections.deque[Message] = field(default_factory=collections.deque)
    endpoint: Endpoint | None = None  # as last read, at endpoint_read (monotonic)
    endpoint_read: float = 0.0

    def stale(self) -> bool:
        return self.endpoint is None or time.monotonic() - self.endpoint_read > ENDPOINT_TTL


class Lanes:
    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries
        self.options = deliveries.options
        self.on_db = deliveries.on_db

    async def run(self, run: Round, lane: Lane) -> None:
        """Claim and send the endpoint's due messages until none is left or the round stops."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                room = self.options.per_endpoint - len(in_flight)
                can_claim = room > 0 and run.claiming() and not lane.closed
                if can_claim:
                    lane.kick.clear()
                    if await self._claim_and_send(run, lane, room, in_flight):
                        continue
                if not in_flight:
                    return
                waiting: set[asyncio.Future[Any]] = set(in_flight)
                kicked = asyncio.ensure_future(lane.kick.wait())
                if can_claim:  # with room, a kick (more is due) is worth another claim
                    waiting.add(kicked)
                try:
                    done, _ = await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
                finally:
                    kicked.cancel()
                in_flight.difference_update(done)
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            if lane.claimed:
                unsent, lane.claimed = [m.id for m in lane.claimed], collections.deque()
                with contextlib.suppress(Exception):  # else their lease ends: due again then
                    await self.on_db(messages.release, unsent)

    async def _claim_and_send(
        self, run: Round, lane: Lane, room: int, in_flight: set[asyncio.Task[None]]
    ) -> bool:
        """Claim up to ``room`` due messages (as many as there are free global slots, at least
        one) and start sending them; whether any were claimed."""
        await run.slots.acquire()
        if not run.claiming():  # stopped, or out of time, while waiting for a slot
            run.slots.release()
            lane.closed = True
            return False
        taken = 1
        while taken < room and not run.slots.locked():
            await run.slots.acquire()  # does not block: a free slot
            taken += 1
        sending: list[Message] = []
        try:
            if not lane.claimed or lane.stale():
                refresh = lane.stale()
                ahead = max(taken, self.options.per_endpoint * PREFETCH)
                endpoint, claimed = await self.on_db(
                    self._claim,
                    lane.endpoint_id,
                    run.clock(),
                    0 if lane.claimed else ahead,
                    refresh,
                )
                if refresh:
                    lane.endpoint, lane.endpoint_read = endpoint, time.monotonic()
                lane.claimed.extend(claimed)
            while lane.claimed and len(sending) < taken:
                sending.append(lane.claimed.popleft())
        except Exception:
            log.exception("webhooks: claiming messages of endpoint %s failed", lane.endpoint_id)
            lane.closed = True
            await asyncio.sleep(LANE_BACKOFF)
            return False
        finally:
            for _ in range(taken - len(sending)):
                run.slots.release()
        endpoint = lane.endpoint
        if endpoint is None or not endpoint.enabled:
            lane.closed = True
            return False
        for message in sending:
            in_flight.add(asyncio.create_task(self._deliver(run, lane, endpoint, message)))
        return bool(sending)

    async def _deliver(self, run: Round, lane: Lane, endpoint: Endpoint, message: Message) -> None:
        if await self.deliveries.deliver(run, endpoint, message):
            lane.closed = True  # this attempt disabled the endpoint

    def _claim(
        self, db: Database, endpoint_id: str, now: datetime, limit: int, refresh: bool
    ) -> tuple[Endpoint | None, list[Message]]:
        endpoint = endpoints.get_endpoint(db, endpoint_id) if refresh else None
        if refresh and endpoint is None:
            return None, []
        if endpoint is not None and not endpoint.enabled:
            messages.fail_pending(db, endpoint_id, now)
            return endpoint, []
        if limit <= 0:
            return endpoint, []
        return endpoint, messages.claim(db, endpoint_id, now, limit, self.options.lease)
