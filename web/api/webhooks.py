"""The REST API's webhook endpoints: a user's subscriptions to what happens to their executions,
their signing secrets and their delivery log.

Views parse with the serializers below (which also document the API) and call one function of
``web.webhooks``, which checks ownership and what was sent (a safe URL, known event types
and tools). A secret is in a response only when it is made: on create and on rotate.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from services.webhooks.actions import EVENT_TYPES
from web import webhooks
from web.api import serializers as s
from web.api.parsers import JSONParser
from web.webhooks import EVENT_NAMES, MAX_DESCRIPTION, MAX_URL, MESSAGE_STATUSES

# -- shapes ----------------------------------------------------------------------------------------


class WebhookProblemSerializer(s.ProblemSerializer):
    reason = serializers.CharField(
        required=False,
        help_text="for unsafe_url: insecure_scheme, invalid_url, unresolvable_host or "
        "forbidden_address",
    )


_EVENT_TYPES_HELP = (
    "execution event types to send, short (`Completed`) or full "
    f"(`MagicToolbox.Execution.Completed`): {', '.join(EVENT_NAMES)}; empty: every type"
)


# The schema's constraints are what is checked here or in ``web.webhooks``, so a request the
# schema allows is refused only for what it cannot say: whether a host resolves to a public
# address (``unsafe_url``).
URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s]*)?$"


@extend_schema_field(
    {"type": "string", "format": "uri", "pattern": URL_PATTERN, "maxLength": MAX_URL}
)
class UrlField(serializers.CharField):
    """A webhook URL: absolute, http(s), no credentials, no spaces."""


@extend_schema_field({"type": "string", "enum": [*EVENT_NAMES, *EVENT_TYPES]})
class EventTypeField(serializers.CharField):
    """An execution event type, short or full: checked by ``web.webhooks`` (its own code)."""


class WebhookWriteSerializer(serializers.Serializer):
    url = UrlField(
        max_length=MAX_URL,
        help_text="https on a public address (http on loopback only where the deployment "
        "allows it)",
    )
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION, required=False, allow_blank=True, default=""
    )
    event_types = serializers.ListField(
        child=EventTypeField(max_length=100, trim_whitespace=False),
        required=False,
        default=list,
        max_length=len(EVENT_NAMES) * 2,
        help_text=_EVENT_TYPES_HELP,
    )
    tools = serializers.ListField(
        child=s.ToolSlugField(max_length=100),
        required=False,
        default=list,
        max_length=500,
        help_text="tool slugs; empty: every tool",
    )
    enabled = serializers.BooleanField(required=False, default=True)


class WebhookUpdateSerializer(WebhookWriteSerializer):
    """PATCH: any of the fields; the ones left out stay as they are."""

    url = UrlField(max_length=MAX_URL, required=False)


class WebhookLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    deliveries = serializers.CharField()
    rotate_secret = serializers.CharField()
    recover = serializers.CharField()
    page = serializers.CharField(help_text="the endpoint's page in the UI")


class WebhookSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    event_types = serializers.ListField(child=serializers.CharField(), help_text="empty: all")
    tools = serializers.ListField(child=serializers.CharField(), help_text="empty: all")
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="why it was turned off (a 410 answer, failing for 5 days)"
    )
    failing_since = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    links = WebhookLinksSerializer()


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="the signing secret (whsec_…): shown only now")


class RotatedSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="the new signing secret: shown only now")
    previous_valid_until = serializers.DateTimeField(
        help_text="the previous secret signs too until then"
    )


class DeliveryQuerySerializer(s.QuerySerializer):
    status = serializers.ChoiceField(choices=MESSAGE_STATUSES, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


class AttemptSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    at = serializers.DateTimeField()
    status = serializers.IntegerField(allow_null=True, help_text="the HTTP status, if any")
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField()
    response = serializers.CharField(allow_blank=True, help_text="the response's first bytes")
    error = serializers.CharField(allow_null=True)


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=MESSAGE_STATUSES)
    attempts = serializers.IntegerField(help_text="attempts made so far")
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    attempt_log = AttemptSerializer(many=True)


class DeliveriesSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)


class RecoverSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="send again what failed since this time")


class RecoveredSerializer(serializers.Serializer):
    requeued = serializers.IntegerField()


def _problems(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    return s.problem_responses(*statuses, bad_request=WebhookProblemSerializer)


ID_PARAM = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
MESSAGE_PARAM = OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class _WebhookView(APIView):
    parser_classes = (JSONParser,)


# -- views -----------------------------------------------------------------------------------------


class WebhookList(_WebhookView):
    @extend_schema(
        summary="Your webhook endpoints",
        operation_id="webhooks_list",
        responses={200: WebhookSerializer(many=True), **_problems(*s.AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        return Response([webhooks.represent(e) for e in webhooks.endpoints(request.user)])

    @extend_schema(
        summary="Add a webhook endpoint",
        operation_id="webhooks_create",
        description=(
            "Events of your executions are POSTed to `url`, signed as Standard Webhooks with "
            "the returned `secret`, which is shown only in this response. Refused with "
            "`unsafe_url` (and a `reason`), `invalid_event_type` or `unknown_tool`; with "
            "`webhook_limit_reached` (409, and the `limit`) when you already have as many "
            "endpoints as one user may (`WEBHOOKS_PER_USER`, 25 by default)."
        ),
        request=WebhookWriteSerializer,
        responses={
            201: WebhookCreatedSerializer,
            **_problems(400, 409, 413, 415, *s.AUTH_ERRORS),
        },
    )
    def post(self, request: Request) -> Response:
        body = WebhookWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, secret = webhooks.create(request.user, **body.validated_data)
        shown = {**webhooks.represent(endpoint), "secret": secret}
        response = Response(shown, status=201)
        response["Location"] = shown["links"]["self"]
        response["Cache-Control"] = "no-store"
        return response


class WebhookDetail(_WebhookView):
    @extend_schema(
        summary="A webhook endpoint",
        operation_id="webhooks_retrieve",
        parameters=[ID_PARAM],
        responses={200: WebhookSerializer, **_problems(404, *s.AUTH_ERRORS)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(webhooks.represent(webhooks.get(request.user, id)))

    @extend_schema(
        summary="Change a webhook endpoint",
        operation_id="webhooks_partial_update",
        description=(
            "Only the fields sent change, checked as on create. `enabled: true` turns a "
            "disabled endpoint back on and clears `disabled_reason`."
        ),
        parameters=[ID_PARAM],
        request=WebhookUpdateSerializer,
        responses={200: WebhookSerializer, **_problems(400, 404, 413, 415, *s.AUTH_ERRORS)},
    )
    def patch(self, request: Request, id: str) -> Response:
        body = WebhookUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return Response(
            webhooks.represent(webhooks.update(request.user, id, **body.validated_data))
        )

    @extend_schema(
        summary="Delete a webhook endpoint and its delivery log",
        operation_id="webhooks_destroy",
        parameters=[ID_PARAM],
        responses={204: None, **_problems(404, *s.AUTH_ERRORS)},
    )
    def delete(self, request: Request, id: str) -> Response:
        webhooks.delete(request.user, id)
        return Response(status=204)


class WebhookRotateSecret(_WebhookView):
    @extend_schema(
        summary="Replace a webhook endpoint's signing secret",
        operation_id="webhooks_rotate_secret",
        description=(
            "The new secret is shown only in this response. Deliveries are signed with both "
            "until `previous_valid_until`, so receivers can switch over without losing any."
        ),
        parameters=[ID_PARAM],
        request=None,
        responses={200: RotatedSerializer, **_problems(404, *s.AUTH_ERRORS)},
    )
    def post(self, request: Request, id: str) -> Response:
        rotated = webhooks.rotate(request.user, id)
        body = {"secret": rotated.secret, "previous_valid_until": rotated.previous_valid_until}
        return Response(RotatedSerializer(body).data, headers={"Cache-Control": "no-store"})


class WebhookDeliveries(_WebhookView):
    @extend_schema(
        summary="A webhook endpoint's delivery log",
        operation_id="webhooks_deliveries",
        description=(
            "Its latest messages, newest first, each with its attempts. A message and its "
            "attempts are kept for `WEBHOOK_MESSAGE_RETENTION_DAYS` (30 by default) after the "
            "last thing that happened to it (made, attempted, sent again), then deleted; a "
            "message still pending is kept until it is delivered or fails."
        ),
        parameters=[ID_PARAM, DeliveryQuerySerializer],
        responses={200: DeliveriesSerializer, **_problems(400, 404, *s.AUTH_ERRORS)},
    )
    def get(self, request: Request, id: str) -> Response:
        query = DeliveryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = webhooks.deliveries(
            request.user,
            id,
            status=query.validated_data.get("status"),
            limit=query.validated_data["limit"],
        )
        return Response({"results": found})


class WebhookRedeliver(_WebhookView):
    @extend_schema(
        summary="Send one message again",
        operation_id="webhooks_redeliver",
        description="Queued now, whatever became of it; its earlier attempts stay in the log.",
        parameters=[ID_PARAM, MESSAGE_PARAM],
        request=None,
        responses={202: MessageSerializer, **_problems(404, *s.AUTH_ERRORS)},
    )
    def post(self, request: Request, id: str, message_id: str) -> Response:
        return Response(webhooks.redeliver(request.user, id, message_id), status=202)


class WebhookRecover(_WebhookView):
    @extend_schema(
        summary="Send again every message that failed since a time",
        operation_id="webhooks_recover",
        parameters=[ID_PARAM],
        request=RecoverSerializer,
        responses={202: RecoveredSerializer, **_problems(400, 404, 413, 415, *s.AUTH_ERRORS)},
    )
    def post(self, request: Request, id: str) -> Response:
        body = RecoverSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requeued = webhooks.recover(request.user, id, body.validated_data["since"])
        return Response({"requeued": requeued}, status=202)
