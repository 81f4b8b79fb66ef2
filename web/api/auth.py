"""API authentication: DRF's token (``Authorization: Token <key>``), its Bearer spelling, and the
browser's session (with CSRF) for the UI's own calls.

A token's user is remembered for ``TOKEN_CACHE_SECONDS`` (30 s), so a status poll does not pay for
an ORM lookup each time. Revoking a token or changing a user in this process forgets what was
remembered at once; another process notices within the TTL.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication
from rest_framework.authtoken.models import Token

TOKEN_CACHE_SECONDS = 30.0
KEYWORDS = (b"Token ", b"Bearer ")  # TokenAuthentication's and BearerTokenAuthentication's
_remembered: dict[str, tuple[Any, Token, float]] = {}
_lock = threading.Lock()


def token_key(authorization: bytes) -> str | None:
    """The key of an ``Authorization: Token <key>`` (or ``Bearer <key>``) header's value."""
    for keyword in KEYWORDS:
        if authorization.startswith(keyword) and len(authorization) > len(keyword):
            return authorization[len(keyword) :].decode("latin-1").strip() or None
    return None


def forget_tokens(**kwargs: Any) -> None:
    with _lock:
        _remembered.clear()


post_delete.connect(forget_tokens, sender=Token, dispatch_uid="api.forget_tokens.token")
post_save.connect(forget_tokens, sender=Token, dispatch_uid="api.forget_tokens.token_saved")
post_save.connect(forget_tokens, sender=get_user_model(), dispatch_uid="api.forget_tokens.user")


def remembered_user(key: str) -> Any | None:
    """The active user of a token this process checked in the last ``TOKEN_CACHE_SECONDS``."""
    with _lock:
        found = _remembered.get(key)
    if found is None or found[2] <= time.monotonic():
        return None
    return found[0]


class TokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        now = time.monotonic()
        with _lock:
            found = _remembered.get(key)
        if found is not None and found[2] > now:
            return found[0], found[1]
        user, token = super().authenticate_credentials(key)  # raises for a bad or inactive one
        with _lock:
            if len(_remembered) > 10_000:
                _remembered.clear()
            _remembered[key] = (user, token, now + TOKEN_CACHE_SECONDS)
        return user, token


class BearerTokenAuthentication(TokenAuthentication):
    """The same tokens as ``Authorization: Bearer <key>``, the spelling most clients default to."""

    keyword = "Bearer"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the Bearer spelling as its own security scheme in the OpenAPI schema."""

    target_class = "web.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "the same API tokens"}
