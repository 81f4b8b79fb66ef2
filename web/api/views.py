"""The REST API's views: each parses its input, calls one function of ``web.executions``
(or the tool registry, or the event feed) and returns its result. Nothing here decides anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from services.problems import Problem
from services.tools.base import GLOBAL_MAX_UPLOAD
from web import executions
from web.api import feed, serializers as s
from web.api.parsers import JSONParser
from web.api.throttling import SubmitThrottle
from web.edge import OWNER_HEADER, SEES_HEADER, UPLOAD_SLACK
from web.parts import parts
from web.uploads import StreamingMultiPartParser


class ExecutionIdMixin:
    """The ``{id}`` path parameter, typed for the schema."""

    @staticmethod
    def execution_id(value: Any) -> UUID:
        try:
            return value if isinstance(value, UUID) else UUID(str(value))
        except ValueError:
            raise Problem("execution_not_found", f"there is no execution {value}", 404) from None


# -- tools --------------------------------------------------------------------------------------


def _tool(tool: Any) -> dict[str, Any]:
    described = tool.describe()
    described["takes_input"] = tool.takes_input
    described["url"] = reverse("api-tool-detail", args=[tool.slug])
    return described


class ToolList(APIView):
    permission_classes = (permissions.AllowAny,)

    @extend_schema(
        summary="The tools, with each one's parameter schema",
        operation_id="tools_list",
        responses={200: s.ToolSerializer(many=True), **s.problem_responses(*s.AUTH_ERRORS)},
        parameters=[OpenApiParameter("category", str, description="only this category")],
    )
    def get(self, request: Request) -> Response:
        category = request.query_params.get("category")
        tools = [_tool(t) for t in parts().registry if category is None or t.category == category]
        return Response(tools)


class ToolDetail(APIView):
    permission_classes = (permissions.AllowAny,)

    @extend_schema(
        summary="One tool",
        operation_id="tools_retrieve",
        responses={200: s.ToolSerializer, **s.problem_responses(404, *s.AUTH_ERRORS)},
    )
    def get(self, request: Request, slug: str) -> Response:
        try:
            tool = parts().registry.get(slug)
        except LookupError:
            raise Problem("unknown_tool", f"there is no tool {slug!r}", 404) from None
        return Response(_tool(tool))


# -- executions ---------------------------------------------------------------------------------


class ExecutionList(APIView):
    throttle_classes = (*APIView.throttle_classes, SubmitThrottle)
    # Uploads are streamed from the request to the blob store (web.uploads): written once.
    parser_classes = (JSONParser, StreamingMultiPartParser, FormParser)

    @extend_schema(
        summary="Your executions, newest first",
        operation_id="executions_list",
        parameters=[s.ListQuerySerializer],
        responses={200: s.ExecutionPageSerializer, **s.problem_responses(400, *s.AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        query = s.ListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        args = query.validated_data
        page = executions.listing(
            request.user,
            tool=args.get("tool"),
            status=args.get("status"),
            limit=args["limit"],
            cursor=args.get("cursor"),
        )
        next_url = None
        if page.next_cursor:
            params = {k: v for k, v in request.query_params.items() if k != "cursor"}
            params["cursor"] = page.next_cursor
            next_url = f"{request.path}?{urlencode(params)}"
        return Response({"results": page.results, "next": next_url})

    @extend_schema(
        summary="Submit an execution",
        operation_id="executions_create",
        description=(
            "A sync tool runs in the request: **201** with its result. An async tool is queued: "
            "**202** with `Location`; follow it (or the live updates) until `finished`. With an "
            "`Idempotency-Key` header, repeating a request returns the first execution. "
            "In `multipart/form-data`, the `file` part comes last (it is streamed to storage "
            "as it arrives): a field after it is refused with `field_after_file`."
        ),
        request={
            "multipart/form-data": s.SubmitFormSerializer,
            "application/json": s.SubmitJsonSerializer,
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                s.IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="repeat-safe submits: the same key returns the first execution. "
                f"1 to {s.MAX_IDEMPOTENCY_KEY} printable ASCII characters, no space at either end",
            )
        ],
        responses={
            201: s.ExecutionSerializer,
            202: s.ExecutionSerializer,
            **s.problem_responses(400, 404, 409, 413, 415, 422, *s.AUTH_ERRORS, 503),
        },
    )
    def post(self, request: Request) -> Response:
        declared = request.META.get("CONTENT_LENGTH")
        if declared and declared.isdigit() and int(declared) > GLOBAL_MAX_UPLOAD + UPLOAD_SLACK:
            raise Problem(
                "file_too_large", f"uploads are limited to {GLOBAL_MAX_UPLOAD} bytes", 413
            )
        key = request.headers.get("Idempotency-Key")
        if key is not None and not s.IDEMPOTENCY_KEY.fullmatch(key):
            raise Problem(
                "invalid_idempotency_key",
                f"an Idempotency-Key is 1 to {s.MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            )
        tool, params, upload = self._parse(request)
        execution, created = executions.submit(request.user, tool, params, upload, key)
        response = _created(execution)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response

    @staticmethod
    def _parse(request: Request) -> tuple[str, dict[str, Any], Any]:
        if request.content_type.startswith("application/json"):
            body = s.SubmitJsonSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            return body.validated_data["tool"], body.validated_data.get("params") or {}, None
        form = s.SubmitFormSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        text = form.validated_data.get("params") or "{}"
        try:
            params = json.loads(text)
        except ValueError as exc:
            raise Problem("invalid_params", f"params is not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise Problem("invalid_params", "params must be a JSON object")
        return form.validated_data["tool"], params, form.validated_data.get("file")


def _created(execution: dict[str, Any]) -> Response:
    """A new execution: 201 when a sync tool has run it already, 202 while an async one is
    queued; ``Location`` names it either way."""
    status = 201 if execution["mode"] == "sync" else 202
    return Response(execution, status=status, headers={"Location": execution["links"]["self"]})


ID_PARAM = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
# What any read or action of one execution may answer: 404 (none, not yours, or deleted), and
# what authentication and the rate limits answer. (410 is for files retention removed.)
GONE = (404, *s.AUTH_ERRORS)
DELETED = (
    "An execution you deleted answers **404** `execution_deleted` here, as everywhere; another "
    "user's execution, or none, **404** `execution_not_found`."
)


class ExecutionDetail(ExecutionIdMixin, APIView):
    @extend_schema(
        summary="An execution's status",
        operation_id="executions_retrieve",
        description=DELETED,
        parameters=[ID_PARAM],
        responses={200: s.ExecutionSerializer, **s.problem_responses(*GONE, 503)},
    )
    def get(self, request: Request, id: Any) -> Response:
        return Response(executions.get(request.user, self.execution_id(id)))

    @extend_schema(
        summary="Delete a finished execution",
        operation_id="executions_destroy",
        description=(
            "**204**: its input and output files are removed now, and the execution leaves "
            "your API and UI: from then on its status, events, download and actions (DELETE "
            "too) answer **404** `execution_deleted`, and it is no longer listed. What stays is "
            "its event stream, the audit trail (ending with `Expired`, `deleted: true`), which "
            "staff read with `magictoolbox audit`. One that has not finished: **409** "
            "`execution_not_finished` (cancel it first). One that retention expired may be "
            "deleted too."
        ),
        parameters=[ID_PARAM],
        responses={204: None, **s.problem_responses(*GONE, 409, 503)},
    )
    def delete(self, request: Request, id: Any) -> Response:
        executions.delete(request.user, self.execution_id(id))
        return Response(status=204)


class ExecutionEvents(ExecutionIdMixin, APIView):
    @extend_schema(
        summary="An execution's events (its audit stream) as CloudEvents",
        operation_id="executions_events",
        parameters=[ID_PARAM],
        responses={
            200: s.TimelineEventSerializer(many=True),
            **s.problem_responses(*GONE),
        },
        description=DELETED,
    )
    def get(self, request: Request, id: Any) -> Response:
        return Response(executions.timeline(request.user, self.execution_id(id)))


def _action(
    name: str,
    summary: str,
    description: str,
    responses: dict[Any, Any],
    *,
    submits: bool = False,
) -> type[APIView]:
    call = getattr(executions, name)

    class Action(ExecutionIdMixin, APIView):
        # A replay or a retry starts a run: it counts against the submit limit (POSTs only).
        throttle_classes = (
            (*APIView.throttle_classes, SubmitThrottle) if submits else APIView.throttle_classes
        )

        @extend_schema(
            operation_id=f"executions_{name}",
            summary=summary,
            description=f"{description}\n\n{DELETED}",
            request=None,
            parameters=[ID_PARAM],
            responses=responses,
        )
        def post(self, request: Request, id: Any) -> Response:
            execution = call(request.user, self.execution_id(id))
            return _created(execution) if name == "replay" else Response(execution)

    Action.__name__ = Action.__qualname__ = f"Execution{name.title()}"
    return Action


ExecutionCancel = _action(
    "cancel",
    "Cancel an execution that has not finished",
    "**200** with the execution, cancelled; one that has finished: **409**.",
    {200: s.ExecutionSerializer, **s.problem_responses(*GONE, 409)},
)
ExecutionRetry = _action(
    "retry",
    "Retry a failed execution now",
    "Brings forward the automatic retry a failure has pending: **200** with the execution "
    "(a sync tool's attempt has run). A final failure: **409** `not_retryable` or "
    "`attempts_exhausted` (replay it instead). Counts as a submit.",
    {200: s.ExecutionSerializer, **s.problem_responses(*GONE, 409, 503)},
    submits=True,
)
ExecutionReplay = _action(
    "replay",
    "Run an execution again as a new one",
    "A new execution with the same tool, params and a copy of the input (`replay_of` names "
    "the original), answered as a submit is: **201** when a sync tool has run it, **202** "
    "while an async one is queued, with `Location`. An input that retention removed: **410** "
    "`input_expired`. Counts as a submit.",
    {
        201: s.ExecutionSerializer,
        202: s.ExecutionSerializer,
        **s.problem_responses(*GONE, 409, 410, 503),
    },
    submits=True,
)


class ExecutionDownload(ExecutionIdMixin, APIView):
    @extend_schema(
        summary="Download an execution's output file",
        operation_id="executions_download",
        parameters=[ID_PARAM],
        responses={
            # The file's own content type (image/png, application/pdf…), as it was stored.
            (200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY),
            **s.problem_responses(*GONE, 409, 410, 503),
        },
    )
    def get(self, request: Request, id: Any) -> StreamingHttpResponse:
        found = executions.download(request.user, self.execution_id(id))
        # Under ASGI, Django would read a sync iterator whole into memory before sending it.
        asgi = isinstance(request._request, ASGIRequest)
        chunks = _async_chunks(found.chunks) if asgi else found.chunks
        response = StreamingHttpResponse(chunks, content_type=found.content_type)
        response["Content-Length"] = str(found.size)
        response["Content-Disposition"] = _attachment(found.filename)
        response["X-Content-Type-Options"] = "nosniff"
        return response


def _attachment(filename: str) -> str:
    from django.utils.http import content_disposition_header

    return content_disposition_header(as_attachment=True, filename=filename)


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Blob chunks for the ASGI server, read one at a time in a worker thread."""
    done = object()
    read = sync_to_async(lambda: next(chunks, done), thread_sensitive=False)
    while (chunk := await read()) is not done:
        yield chunk  # type: ignore[misc]


# -- the event feed ------------------------------------------------------------------------------


class EventFeed(APIView):
    @extend_schema(
        summary="The global event feed: every event after a position (long poll with `wait`)",
        operation_id="events_feed",
        description=(
            "Your executions' events (every execution's for staff), in feed order. Read on with "
            "`after=next_after`; with `wait`, an empty read waits up to that many seconds."
        ),
        parameters=[s.FeedQuerySerializer],
        responses={200: s.FeedSerializer, **s.problem_responses(400, *s.AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        query = s.FeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit, wait = (query.validated_data[k] for k in ("after", "limit", "wait"))
        store = parts().store
        owner = None if request.user.is_staff else executions.owner_of(request.user)
        deadline = time.monotonic() + wait
        visible: list[dict[str, Any]] = []
        while True:
            read = feed.page(after, limit, owner)
            visible += read.events
            after = read.next_after
            remaining = deadline - time.monotonic()
            if visible or read.read == limit or remaining <= 0:
                break
            if not read.read:
                store.wait_for(after, min(remaining, 1.0))
        answer = Response({"events": visible, "next_after": after, "head": read.head})
        # For the edge (web.edge), which parks an empty long poll and drops this header.
        answer[OWNER_HEADER] = executions.owner_of(request.user)
        answer[SEES_HEADER] = "own" if owner is not None else "all"
        return answer
