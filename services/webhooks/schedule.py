"""When to try a webhook delivery again.

Eight attempts over about 27½ hours: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h. An endpoint that answers 429 or 503 with ``Retry-After`` may ask for a later (or sooner)
retry; we honour it up to a day. An endpoint that has failed every delivery for
``FAILING_TOO_LONG`` is one the delivery worker may disable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds before attempt n
MAX_ATTEMPTS = len(RETRY_SCHEDULE)
RETRY_AFTER_CAP = 86400.0  # seconds: a day
FAILING_TOO_LONG = timedelta(days=5)


def delay_before(attempt: int, scale: float = 1.0) -> float | None:
    """Seconds to wait before attempt number ``attempt`` (1-based), times ``scale`` (tests
    compress time with it); None when there is no such attempt (the last one has failed)."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if attempt > MAX_ATTEMPTS:
        return None
    return RETRY_SCHEDULE[attempt - 1] * scale


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait as a ``Retry-After`` header asks (delta-seconds or an HTTP-date), at
    most a day; None when it is absent or unreadable. A date in the past means now (0)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP-dates are
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), RETRY_AFTER_CAP)
