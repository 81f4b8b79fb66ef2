"""Rate limits per user (or per address when anonymous), from the settings' ``API_THROTTLE_*``,
read at request time from the parts the process serves with.

DRF's ``SimpleRateThrottle`` keeps a list of every request's time in the cache and reads and
writes the whole list (pickled) on each request: at 1200/min that is a 1200-item list per call.
These throttles count per fixed window instead, one ``cache.incr`` per request, with the same
``rate`` strings, cache keys and ``wait()`` (the seconds until the window ends).

The counters live in Django's default cache: Redis shared by every process where there is one
(``CACHE_REDIS``), this process's memory on the embedded default. When the cache cannot be
reached the request goes through and a warning is logged: a Redis outage costs the limits for
its duration, not every request a 500. The client's address is ``REMOTE_ADDR`` unless
``TRUSTED_PROXIES`` proxies stand in front, whose ``X-Forwarded-For`` entries then name it: a
client cannot pick its own address by sending the header. The login lockouts
(``web.ui.lockout``) key on the same address.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import cache as default_cache
from rest_framework import throttling

from web.edge import REPOLL_TOKEN
from web.parts import parts

log = logging.getLogger(__name__)
WARN_EVERY_SECONDS = 60.0
_last_warning = [0.0]


def client_address(request: Any) -> str | None:
    """The client's address: the peer's, or with ``TRUSTED_PROXIES`` = n > 0 the n-th
    ``X-Forwarded-For`` entry from the right (each trusted proxy appends the address it saw;
    what the client itself sent stands further left and is ignored)."""
    meta = request.META
    proxies = parts().settings.TRUSTED_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",") if entry.strip()]
        if entries:
            return entries[-min(proxies, len(entries))]
    return meta.get("REMOTE_ADDR")


def _unavailable(exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY_SECONDS:
        _last_warning[0] = now
        log.warning("rate limits are not counted: the cache is unavailable (%s)", exc)


def count(cache: Any, key: str, duration: int, now: float) -> tuple[int, float]:
    """Count one request under ``key`` in the current window: (count so far, window end).
    The count is 0 when the cache is unavailable (the request goes through)."""
    window = int(now // duration)
    key = f"{key}:{window}"
    end = (window + 1) * duration
    try:
        # add() is a no-op when the key exists; incr() is atomic in LocMem and Redis caches.
        cache.add(key, 0, timeout=duration + 1)
        try:
            counted = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=duration + 1)
            counted = 1
    except Exception as exc:  # Redis down or slow: fail open, see the module's docstring
        _unavailable(exc)
        return 0, end
    return counted, end


def _allowed(scope: str, ident: Any) -> tuple[bool, float]:
    """Count one request of ``ident`` (a user's pk) under ``scope``: (allowed, seconds to wait)."""
    rate = parts().settings.throttle_rate(scope)
    limit, duration = throttling.SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    key = throttling.UserRateThrottle.cache_format % {"scope": scope, "ident": ident}
    now = time.time()
    counted, end = count(default_cache, key, duration, now)
    return counted <= limit, max(end - now, 0.001)


def user_allowed(user: Any) -> bool:
    """Would ``UserThrottle`` let this user's request through? Counts it, as the throttle does."""
    return _allowed(UserThrottle.scope, user.pk)[0]


def submit_wait(user: Any) -> float | None:
    """Count one submit of ``user`` (a run, a retry, a replay) outside the API, on the same
    counter as ``SubmitThrottle``: None when it may go ahead, else the seconds to wait."""
    allowed, wait = _allowed(SubmitThrottle.scope, user.pk)
    return None if allowed else wait


def _repoll(request: Any) -> bool:
    """A long poll's second run, made by the edge (``web.edge``): its first run was counted."""
    return request.META.get("HTTP_X_MAGICTOOLBOX_REPOLL") == REPOLL_TOKEN


class _WindowCounter:
    scope: str
    cache = default_cache
    timer = time.time

    def get_rate(self) -> str:
        return parts().settings.throttle_rate(self.scope)

    def get_ident(self, request: Any) -> str | None:
        return client_address(request)

    def allow_request(self, request: Any, view: Any) -> bool:
        rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(rate)  # type: ignore[attr-defined]
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None or _repoll(request):
            return True
        self.now = self.timer()
        counted, self.window_end = count(self.cache, key, self.duration, self.now)
        return counted <= self.num_requests

    def wait(self) -> float:
        return max(self.window_end - self.now, 0.001)


class AnonThrottle(_WindowCounter, throttling.AnonRateThrottle):
    scope = "anon"


class UserThrottle(_WindowCounter, throttling.UserRateThrottle):
    scope = "user"


class SubmitThrottle(_WindowCounter, throttling.UserRateThrottle):
    """Submits cost more than reads (uploads, sync tool runs, retries, replays): their own,
    lower limit. The UI's forms count on the same counter (``submit_wait``)."""

    scope = "submit"

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
