"""The problem document (RFC 9457, ``application/problem+json``) every HTTP edge answers with.

One shape for the REST API, the Event Grid receiver and the Functions host's HTTP trigger: a
program branches on ``code``; ``title`` and ``detail`` are for people.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

CONTENT_TYPE = "application/problem+json"


def document(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://magictoolbox.dev/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
