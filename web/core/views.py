"""Plain views of the core app: the health check that load balancers and ``make run`` users hit."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from web.parts import parts

log = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with the event store's head position, or 503 when the store cannot be read."""
    try:
        head = parts().store.head_position()
    except Exception:
        log.exception("health check: event store unavailable")
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "head_position": head})
