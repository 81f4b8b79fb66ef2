"""Rate limits per user (or per address when anonymous), from the settings' ``API_THROTTLE_*``,
read at request time from the parts the process serves with.

DRF's ``SimpleRateThrottle`` keeps a list of every request's time in the cache and reads and
writes the whole list (pickled) on each request: at 1200/min that is a 1200-item list per call.
These throttles count per fixed window instead, one ``cache.incr`` per request, with the same
``rate`` strings, cache keys and ``wait()`` (the seconds until the window ends).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache as default_cache
from rest_framework import throttling

from web.parts import parts


def count(cache: Any, key: str, duration: int, now: float) -> tuple[int, float]:
    """Count one request under ``key`` in the current window: (count so far, window end)."""
    window = int(now // duration)
    key = f"{key}:{window}"
    # add() is a no-op when the key exists; incr() is atomic in LocMem and Redis caches.
    cache.add(key, 0, timeout=duration + 1)
    try:
        counted = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=duration + 1)
        counted = 1
    return counted, (window + 1) * duration


def user_allowed(user: Any) -> bool:
    """Would ``UserThrottle`` let this user's request through? Counts it, as the throttle does."""
    rate = parts().settings.throttle_rate(UserThrottle.scope)
    limit, duration = throttling.SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    key = UserThrottle.cache_format % {"scope": UserThrottle.scope, "ident": user.pk}
    return count(default_cache, key, duration, time.time())[0] <= limit


class _WindowCounter:
    scope: str
    cache = default_cache
    timer = time.time

    def get_rate(self) -> str:
        return parts().settings.throttle_rate(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(rate)  # type: ignore[attr-defined]
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None:
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
    """Submits cost more than reads (uploads, sync tool runs): their own, lower limit."""

    scope = "submit"

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
