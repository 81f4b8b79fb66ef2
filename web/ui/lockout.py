"""Login lockouts with django-axes: the backend that refuses a locked-out sign-in and the page
that says so.

``LOGIN_FAILURE_LIMIT`` wrong passwords for one account from one address (``client_address``,
as the rate limits see it) lock that pair out for ``LOGIN_LOCKOUT_MINUTES``: the right password
is refused too until then. The UI's and the admin's login pages answer 429 with ``Retry-After``
and a sentence saying how long. Token authentication (the API) takes no password: nothing to
guess there.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.deprecation import MiddlewareMixin

from web.ui.forms import LoginForm


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check before the password one, for sign-ins that come with a request.

    ``authenticate`` without a request is not a sign-in from the network (a management command,
    the test client's ``login``): there is no address to lock out, so this backend stands
    aside and the password backend decides, where axes' own would raise.
    """

    def authenticate(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


def lockout_message(minutes: float) -> str:
    shown = max(1, math.ceil(minutes))
    unit = "minute" if shown == 1 else "minutes"
    return (
        f"Too many failed sign-ins for this account from your address: signing in is locked "
        f"for {shown} {unit}. Try again later."
    )


def time_left(request: HttpRequest) -> timedelta:
    """How long the pair stays locked: the cool-off from the failure that locked it (attempts
    while locked are not recorded, so that failure is the pair's last)."""
    cooloff = settings.AXES_COOLOFF_TIME
    last = AccessAttempt.objects.filter(
        username=request.POST.get("username", ""),
        ip_address=getattr(request, "axes_ip_address", None),
    ).aggregate(Max("attempt_time"))["attempt_time__max"]
    if last is None:
        return cooloff
    return min(cooloff, max(last + cooloff - timezone.now(), timedelta(seconds=1)))


def lockout_page(request: HttpRequest) -> TemplateResponse:
    """The login page with the reason, status 429 and ``Retry-After``: the time left."""
    left = time_left(request)
    message = lockout_message(left.total_seconds() / 60)
    form = LoginForm.locked(request, request.POST.get("username", ""), message)
    context = {"form": form, "next": request.POST.get("next", ""), "nav": "login"}
    response = TemplateResponse(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(math.ceil(left.total_seconds()))
    response.lockout = True  # type: ignore[attr-defined]
    return response


class LockoutPageMiddleware(MiddlewareMixin):
    """A locked-out sign-in's page is rendered once: the login view's page with "wrong
    password" is swapped for the lockout page before Django renders it (axes would render the
    view's page, then its own)."""

    def process_template_response(
        self, request: HttpRequest, response: TemplateResponse
    ) -> TemplateResponse:
        if getattr(request, "axes_locked_out", False) and not getattr(response, "lockout", False):
            return lockout_page(request)
        return response


def locked_out(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The answer to a sign-in attempt while locked out (``AXES_LOCKOUT_CALLABLE``). Axes calls
    it with the view's response and the credentials, in an order that varies: the view's
    response is kept when it is the lockout page already (``LockoutPageMiddleware``)."""
    for given in (*args, *kwargs.values()):
        if getattr(given, "lockout", False):
            return given
    page = lockout_page(request)
    page.render()
    return page
