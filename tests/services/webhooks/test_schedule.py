"""When deliveries are tried again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.webhooks.schedule import (
    FAILING_TOO_LONG,
    MAX_ATTEMPTS,
    RETRY_AFTER_CAP,
    delay_before,
    retry_after,
)

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


def test_eight_attempts_from_at_once_to_ten_hours_apart() -> None:
    delays = [delay_before(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert delays == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert delay_before(MAX_ATTEMPTS + 1) is None
    assert timedelta(seconds=sum(delays)) == timedelta(hours=27, minutes=35, seconds=5)
    assert timedelta(days=5) == FAILING_TOO_LONG


def test_the_schedule_scales_for_tests() -> None:
    assert delay_before(3, scale=0.001) == pytest.approx(0.3)
    assert delay_before(1, scale=0.001) == 0
    assert delay_before(9, scale=0.001) is None


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError):
        delay_before(0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("9999999", RETRY_AFTER_CAP),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Fri, 14 Mar 2025 12:05:00 GMT", 300.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # past: now
        (format_datetime(NOW + timedelta(days=30), usegmt=True), RETRY_AFTER_CAP),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("٣", None),  # an Arabic-Indic digit: isdigit() yet not delta-seconds
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header: str | None, seconds: float | None) -> None:
    assert retry_after(header, NOW) == seconds


def test_retry_after_takes_a_naive_now_as_utc() -> None:
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert retry_after(header, NOW.replace(tzinfo=None)) == 30.0
