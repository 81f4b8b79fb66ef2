"""API authentication: DRF's token (``Authorization: Token <key>``), its Bearer spelling, and the
browser's session (with CSRF) for the UI's own calls."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication


class TokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"


class BearerTokenAuthentication(authentication.TokenAuthentication):
    """The same tokens as ``Authorization: Bearer <key>``, the spelling most clients default to."""

    keyword = "Bearer"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the Bearer spelling as its own security scheme in the OpenAPI schema."""

    target_class = "web.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "the same API tokens"}
