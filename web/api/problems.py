"""Every API error as ``application/problem+json`` (RFC 9457) with a stable ``code``.

``code`` is what a program branches on; ``title`` and ``detail`` are for people. DRF's own
errors, our ``Problem``s and Django's 404/500 for API paths all come out in this one shape, and
a user never sees a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from events.connections import unavailable
from services.problems import CONTENT_TYPE, Problem, document as body

log = logging.getLogger(__name__)
# The database out of reach or past its timeouts: the same 503 here and in the fast paths.
DATABASE_UNAVAILABLE = "database_unavailable"
UNAVAILABLE_DETAIL = "the database did not answer in time; try again"
RETRY_UNAVAILABLE_SECONDS = 5


# DRF's exception classes → our codes (DRF's own default_code where it is already stable).
_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def response(status: int, code: str, detail: str, **extra: Any) -> Response:
    return Response(body(status, code, detail, **extra), status=status, content_type=CONTENT_TYPE)


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested validation detail as a flat list of ``{field, message, code}``."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            out += _flatten(item, prefix)
        return out
    return [
        {"field": prefix or "body", "message": str(detail), "code": getattr(detail, "code", "")}
    ]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Problem):
        result = response(exc.status, exc.code, exc.detail, **exc.extra)
        if "retry_after" in exc.extra:
            result["Retry-After"] = str(exc.extra["retry_after"])
        return result
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.APIException):
        plain = drf_exception_handler(exc, context)  # keeps WWW-Authenticate, Retry-After
        code = next((c for t, c in _CODES.items() if isinstance(exc, t)), exc.default_code)
        extra: dict[str, Any] = {}
        if isinstance(exc, exceptions.ValidationError):
            extra["errors"] = _flatten(exc.detail)
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in extra["errors"][:5])
        else:
            detail = str(exc.detail)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            extra["retry_after"] = int(exc.wait + 0.999)
        result = response(exc.status_code, str(code), detail, **extra)
        if plain is not None:
            for header in ("WWW-Authenticate", "Retry-After", "Allow"):
                if header in plain:
                    result[header] = plain[header]
        return result
    if unavailable(exc) or (exc.__cause__ is not None and unavailable(exc.__cause__)):
        # The database out of reach or past its timeouts (a lock held, too many clients): a
        # moment's trouble, not the request's; send it again (a submit with its Idempotency-Key).
        log.warning("%s %s: the database did not answer (%s)", *_where(context), exc)
        result = response(
            503, DATABASE_UNAVAILABLE, UNAVAILABLE_DETAIL, retry_after=RETRY_UNAVAILABLE_SECONDS
        )
        result["Retry-After"] = str(RETRY_UNAVAILABLE_SECONDS)
        return result
    return None  # anything else is a bug: Django's 500 handler answers (see server_error)


def _where(context: dict[str, Any]) -> tuple[str, str]:
    request = context.get("request")
    return (getattr(request, "method", "?"), getattr(request, "path", "?"))


def _api_path(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 handler: problem+json under /api/, the UI's page elsewhere."""
    if _api_path(request):
        return JsonResponse(
            body(404, "not_found", f"there is nothing at {request.path}"),
            status=404,
            content_type=CONTENT_TYPE,
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a bad Host header)."""
    if _api_path(request):
        return JsonResponse(
            body(400, "bad_request", str(exception) or "the request cannot be read"),
            status=400,
            content_type=CONTENT_TYPE,
        )
    from django.views.defaults import bad_request as page

    return page(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api_path(request):
        return JsonResponse(
            body(403, "permission_denied", str(exception) or "not allowed"),
            status=403,
            content_type=CONTENT_TYPE,
        )
    from django.views.defaults import permission_denied as page

    return page(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _api_path(request):
        return JsonResponse(
            body(500, "internal_error", "something failed on our side; it has been logged"),
            status=500,
            content_type=CONTENT_TYPE,
        )
    from django.views.defaults import server_error as page

    return page(request)
