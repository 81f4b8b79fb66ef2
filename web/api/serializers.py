"""The API's shapes, declared once: requests are validated with them and the OpenAPI schema
(drf-spectacular) is generated from them, so the documentation cannot drift from the code."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from services.executions.actions import MAX_IDEMPOTENCY_KEY
from services.problems import CONTENT_TYPE
from web.executions import CURSOR_PATTERN, STATUSES

# Printable ASCII, no space at either end (an HTTP server strips those): what the decider's key
# check takes, and what the schema says, so a key the schema allows is never refused.
IDEMPOTENCY_KEY_PATTERN = rf"^[!-~]([ -~]{{0,{MAX_IDEMPOTENCY_KEY - 2}}}[!-~])?$"
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)  # use with fullmatch
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDEMPOTENCY_KEY,
    "pattern": IDEMPOTENCY_KEY_PATTERN,
}

ACTIONS = ("cancel", "retry", "replay", "delete", "download")


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="stable, for programs: e.g. execution_not_found")
    errors = serializers.ListField(child=serializers.DictField(), required=False)
    retry_after = serializers.IntegerField(required=False)


AUTH_ERRORS = (401, 429)  # what any authenticated, throttled view may answer


def problem_responses(
    *statuses: int, bad_request: type[serializers.Serializer] = ProblemSerializer
) -> dict[tuple[int, str], OpenApiResponse]:
    """The schema's problem+json answers for these statuses (``bad_request`` for 400)."""
    return {
        (status, CONTENT_TYPE): OpenApiResponse(
            bad_request if status == 400 else ProblemSerializer, description="problem"
        )
        for status in statuses
    }


class LimitsSerializer(serializers.Serializer):
    time_s = serializers.FloatField(help_text="wall-clock seconds an attempt may take")
    cpu_s = serializers.FloatField(help_text="CPU seconds an attempt may use")
    memory = serializers.IntegerField(help_text="bytes of memory the tool may use")
    output = serializers.IntegerField(help_text="bytes of any file it writes, or of its text")
    scratch = serializers.IntegerField(help_text="bytes of scratch files at once")


class ToolSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    version = serializers.CharField()
    mode = serializers.ChoiceField(choices=["sync", "async"])
    params_schema = serializers.DictField(help_text="JSON Schema of the tool's params")
    accepts = serializers.DictField(
        child=serializers.CharField(), help_text="accepted extension → content type"
    )
    takes_input = serializers.BooleanField()
    max_size = serializers.IntegerField(help_text="largest accepted upload, in bytes")
    timeout_s = serializers.IntegerField()
    limits = LimitsSerializer(
        help_text="what one run may take; past one it fails with time_limit, memory_limit, "
        "output_too_large or disk_limit"
    )
    max_attempts = serializers.IntegerField()
    output = serializers.ChoiceField(choices=["file", "text"])
    url = serializers.CharField()


class ErrorInfoSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    retryable = serializers.BooleanField()


class LinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    events = serializers.CharField()
    download = serializers.CharField(allow_null=True)
    page = serializers.CharField()


class ExecutionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    tool = serializers.CharField()
    tool_name = serializers.CharField()
    category = serializers.CharField()
    mode = serializers.ChoiceField(choices=["sync", "async"])
    status = serializers.ChoiceField(
        choices=STATUSES,
        help_text="`retrying`: an attempt failed and another one is coming by itself, at "
        "`next_attempt_at`, or as soon as a worker is free when that is null; the run is not "
        "finished. `failed`: it ended so (no attempt comes unless you ask for a retry).",
    )
    finished = serializers.BooleanField(
        help_text="true once no further attempt will come by itself (completed, failed, "
        "cancelled, expired); never while `retrying`: poll until this is true"
    )
    percent = serializers.FloatField()
    progress_message = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField(help_text="the last attempt started (0: none yet)")
    max_attempts = serializers.IntegerField(
        allow_null=True,
        help_text="the attempts the tool allows in all, as the last failure recorded it (null "
        "when none did)",
    )
    next_attempt_at = serializers.DateTimeField(
        allow_null=True,
        help_text="when the automatic retry of the last failure is due (status `retrying`); "
        "null when none is scheduled (a retry waiting for a worker, or no retry)",
    )
    input_filename = serializers.CharField(allow_null=True)
    result = serializers.CharField(allow_null=True, allow_blank=True)
    output_filename = serializers.CharField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    error = ErrorInfoSerializer(
        allow_null=True,
        help_text="why the last attempt failed: while `failed`, and while its automatic retry "
        "is scheduled (`next_attempt_at` set)",
    )
    submitted_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    replay_of = serializers.UUIDField(allow_null=True)
    version = serializers.IntegerField(help_text="its stream's version: orders its states")
    actions = serializers.ListField(
        child=serializers.ChoiceField(choices=ACTIONS),
        help_text="what you may ask now. While a failure's retry is scheduled: `retry` (at once, "
        "not at `next_attempt_at`), `replay`, `delete`; `cancel` only once it is re-queued",
    )
    links = LinksSerializer()


class ExecutionPageSerializer(serializers.Serializer):
    results = ExecutionSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="URL of the next page, if any")


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 100, "x-tool-slug": True})
class ToolSlugField(serializers.CharField):
    """A tool's slug: the schema lists the deployment's (``web.api.schema``); another is 404,
    and so is a slug with spaces around it (not trimmed: the schema's values are exact)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class InputFileField(serializers.FileField):
    """An input file: the schema says at least one byte; an empty one gets the uploads'
    own refusal (``empty_file``), like every other refusal of an upload."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty_file=True, **kwargs)


class ParamsTextField(serializers.CharField):
    """The params as JSON text: anything that is not JSON, a NUL included, is ``invalid_params``
    (DRF's CharField would refuse a NUL on its own, as ``invalid_request``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)
        ]


class SubmitFormSerializer(serializers.Serializer):
    """multipart/form-data: a file and the tool's params as a JSON text."""

    tool = ToolSlugField(max_length=100)
    params = ParamsTextField(
        required=False, allow_blank=True, help_text='the params as JSON, e.g. {"angle": 90}'
    )
    file = InputFileField(required=False, help_text="the input file, if the tool takes one")


class SubmitJsonSerializer(serializers.Serializer):
    """application/json: for tools that take no file."""

    tool = ToolSlugField(max_length=100)
    params = serializers.DictField(required=False)


class QuerySerializer(serializers.Serializer):
    """A query string's parameters: a blank value is refused where the schema allows none (a
    number, a choice), rather than read as if the parameter were absent, as DRF would."""

    def to_internal_value(self, data: Any) -> Any:
        blank = {
            name: ["may not be blank"]
            for name, field in self.fields.items()
            if data.get(name) == "" and not getattr(field, "allow_blank", False)
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


class ListQuerySerializer(QuerySerializer):
    # A blank value is no filter, as a form sends it: the schema says so (no minLength).
    tool = serializers.RegexField(
        r"^[a-z0-9-]*$",
        required=False,
        allow_blank=True,
        max_length=100,
        trim_whitespace=False,  # "\tx" is not a slug, as the schema's pattern says
        help_text="only this tool's executions (its slug)",
    )
    status = serializers.ChoiceField(choices=STATUSES, required=False, allow_blank=True)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)
    cursor = serializers.RegexField(
        CURSOR_PATTERN,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="where the page starts: the `cursor` of the previous page's `next` (blank: "
        "the first page)",
    )


class CloudEventSerializer(serializers.Serializer):
    specversion = serializers.CharField()
    id = serializers.CharField()
    source = serializers.CharField()
    type = serializers.CharField()
    subject = serializers.CharField(required=False)
    time = serializers.DateTimeField()
    datacontenttype = serializers.CharField()
    data = serializers.DictField()
    streamversion = serializers.IntegerField()
    streamposition = serializers.IntegerField()
    dataschemaversion = serializers.IntegerField()
    traceparent = serializers.CharField(required=False)
    correlationid = serializers.CharField(required=False)


class TimelineEventSerializer(CloudEventSerializer):
    summary = serializers.CharField(
        help_text="the event in one line, for people (added by the API, not stored)"
    )


class FeedQuerySerializer(QuerySerializer):
    after = serializers.IntegerField(required=False, min_value=0, default=0, max_value=2**62)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    wait = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=30,
        default=0,
        help_text="seconds to wait for an event when there is none after `after` (long poll)",
    )


class FeedSerializer(serializers.Serializer):
    events = CloudEventSerializer(many=True)
    next_after = serializers.IntegerField(help_text="pass as `after` to read on")
    head = serializers.IntegerField(help_text="the store's head position when read")
