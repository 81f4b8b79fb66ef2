"""The REST API's views: each parses its input, calls one function of ``web.executions``
(or the tool registry, or the event feed) and returns its result. Nothing here decides anything.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
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
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events.envelope import EXECUTION_STREAM_PREFIX, RecordedEvent
from services.problems import Problem
from services.tools.base import GLOBAL_MAX_UPLOAD
from web import executions
from web.api import serializers as s
from web.api.throttling import SubmitThrottle
from web.parts import parts

UPLOAD_SLACK = 1024 * 1024  # multipart framing and the other fields around the file


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
        responses={200: s.ToolSerializer(many=True), **s.problem_responses(429)},
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
        responses={200: s.ToolSerializer, **s.problem_responses(404, 429)},
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
            "`Idempotency-Key` header, repeating a request returns the first execution."
        ),
        request={
            "multipart/form-data": s.SubmitFormSerializer,
            "application/json": s.SubmitJsonSerializer,
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="repeat-safe submits: the same key returns the first execution",
            )
        ],
        responses={
            201: s.ExecutionSerializer,
            202: s.ExecutionSerializer,
            **s.problem_responses(400, 404, 409, 413, 415, 422, *s.AUTH_ERRORS),
        },
    )
    def post(self, request: Request) -> Response:
        declared = request.META.get("CONTENT_LENGTH")
        if declared and declared.isdigit() and int(declared) > GLOBAL_MAX_UPLOAD + UPLOAD_SLACK:
            raise Problem(
                "file_too_large", f"uploads are limited to {GLOBAL_MAX_UPLOAD} bytes", 413
            )
        tool, params, upload = self._parse(request)
        key = request.headers.get("Idempotency-Key")
        execution, created = executions.submit(request.user, tool, params, upload, key)
        status = 201 if execution["mode"] == "sync" else 202
        response = Response(execution, status=status)
        response["Location"] = execution["links"]["self"]
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


ID_PARAM = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class ExecutionDetail(ExecutionIdMixin, APIView):
    @extend_schema(
        summary="An execution's status",
        operation_id="executions_retrieve",
        parameters=[ID_PARAM],
        responses={200: s.ExecutionSerializer, **s.problem_responses(404, *s.AUTH_ERRORS)},
    )
    def get(self, request: Request, id: Any) -> Response:
        return Response(executions.get(request.user, self.execution_id(id)))

    @extend_schema(
        summary="Delete an execution's files",
        operation_id="executions_destroy",
        description="Removes its input and output now (`Expired`); its history stays.",
        parameters=[ID_PARAM],
        responses={200: s.ExecutionSerializer, **s.problem_responses(404, 409, *s.AUTH_ERRORS)},
    )
    def delete(self, request: Request, id: Any) -> Response:
        return Response(executions.delete(request.user, self.execution_id(id)))


class ExecutionEvents(ExecutionIdMixin, APIView):
    @extend_schema(
        summary="An execution's events (its audit stream) as CloudEvents",
        operation_id="executions_events",
        parameters=[ID_PARAM],
        responses={
            200: s.TimelineEventSerializer(many=True),
            **s.problem_responses(404, *s.AUTH_ERRORS),
        },
    )
    def get(self, request: Request, id: Any) -> Response:
        return Response(executions.timeline(request.user, self.execution_id(id)))


def _action(name: str, summary: str, description: str = "") -> type[APIView]:
    call = getattr(executions, name)

    class Action(ExecutionIdMixin, APIView):
        @extend_schema(
            operation_id=f"executions_{name}",
            summary=summary,
            description=description,
            request=None,
            parameters=[ID_PARAM],
            responses={
                200: s.ExecutionSerializer,
                **s.problem_responses(404, 409, 410, *s.AUTH_ERRORS),
            },
        )
        def post(self, request: Request, id: Any) -> Response:
            return Response(call(request.user, self.execution_id(id)))

    Action.__name__ = Action.__qualname__ = f"Execution{name.title()}"
    return Action


ExecutionCancel = _action("cancel", "Cancel an execution that has not finished")
ExecutionRetry = _action("retry", "Retry a failed execution (a new attempt)")
ExecutionReplay = _action(
    "replay",
    "Run an execution again as a new one",
    "Same tool, params and a copy of the input; returns the new execution.",
)


class ExecutionDownload(ExecutionIdMixin, APIView):
    @extend_schema(
        summary="Download an execution's output file",
        operation_id="executions_download",
        parameters=[ID_PARAM],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            **s.problem_responses(404, 409, 410, *s.AUTH_ERRORS),
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


class _Owners:
    """execution id → owner, remembered: an execution's owner never changes."""

    def __init__(self, size: int = 50_000) -> None:
        self._known: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def owner(self, event: RecordedEvent) -> str | None:
        execution_id = event.stream[len(EXECUTION_STREAM_PREFIX) :]
        owner = self._known.get(execution_id)
        if owner is None:
            first = parts().store.read_stream(event.stream)[:1]
            if not first or not first[0].type.endswith(".Submitted"):
                return None
            owner = str(first[0].data.get("owner"))
            self._known[execution_id] = owner
            if len(self._known) > self._size:
                self._known.popitem(last=False)
        return owner

    def learn(self, event: RecordedEvent) -> None:
        if event.type.endswith(".Submitted"):
            self._known[event.stream[len(EXECUTION_STREAM_PREFIX) :]] = str(event.data["owner"])


OWNERS = _Owners()


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
            batch = store.read_all(after, limit, stream_prefix=EXECUTION_STREAM_PREFIX)
            for event in batch:
                OWNERS.learn(event)
                if owner is None or OWNERS.owner(event) == owner:
                    visible.append(event.to_cloudevent())
            if batch:
                after = batch[-1].position
            remaining = deadline - time.monotonic()
            if visible or len(batch) == limit or remaining <= 0:
                break
            if not batch:
                store.wait_for(after, min(remaining, 1.0))
        return Response({"events": visible, "next_after": after, "head": store.head_position()})
