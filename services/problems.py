"""Problems: errors a user can act on, and the document (RFC 9457, ``application/problem+json``)
every HTTP edge answers them with.

A ``Problem`` carries a stable ``code`` a program branches on, a sentence for people and the HTTP
status it stands for; the REST API, the UI, the Event Grid receiver and the Functions host's HTTP
trigger all render it the same way.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """An error a user can act on: an HTTP status, a stable ``code`` and a sentence."""

    def __init__(self, code: str, detail: str, status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


def document(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://magictoolbox.dev/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
