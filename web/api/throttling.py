"""Rate limits per user (or per address when anonymous), read from ``settings.API_THROTTLE_RATES``
at request time so a deployment, a test or a benchmark can change them without a restart."""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling


class _FromSettings:
    scope: str

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_FromSettings, throttling.AnonRateThrottle):
    scope = "anon"


class UserThrottle(_FromSettings, throttling.UserRateThrottle):
    scope = "user"


class SubmitThrottle(_FromSettings, throttling.UserRateThrottle):
    """Submits cost more than reads (uploads, sync tool runs): their own, lower limit."""

    scope = "submit"

    def allow_request(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
