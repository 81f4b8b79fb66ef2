"""schemathesis hooks for the API's schema test (``SCHEMATHESIS_HOOKS``): loaded by the
``schemathesis run`` the test starts against the real server.

``schema_valid_is_accepted`` is schemathesis's ``positive_data_acceptance`` but for the refusals
no schema can express (``SEMANTIC``); the test runs it in that check's place. ``before_call``
keeps a valid long poll short: nothing arrives meanwhile.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import Failure

# Operation → problem codes a schema-valid request may still get: what no schema can say.
SEMANTIC: dict[str, set[str]] = {
    # The tool's own params (each tool's params_schema, GET /tools/{slug}/) and the file's
    # content (its type is sniffed, not taken from the name).
    "POST /api/v1/executions/": {
        "invalid_params",
        "input_required",
        "no_input_expected",
        "unsupported_file_type",
        "file_type_mismatch",
        "invalid_filename",
        "file_too_large",
        "empty_file",
        # The same key sent before with another request (the IETF Idempotency-Key draft's 422).
        "idempotency_key_reused",
        # A form field after the file part: the description says the file comes last.
        "field_after_file",
    },
    # Whether the host resolves, and to a public address (http only to loopback, if allowed).
    "POST /api/v1/webhooks/": {"unsafe_url"},
    "PATCH /api/v1/webhooks/{id}/": {"unsafe_url"},
}
UNSAFE_REASONS = {"unresolvable_host", "forbidden_address", "insecure_scheme"}


@schemathesis.check
def schema_valid_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis's ``positive_data_acceptance``, but for the refusals in ``SEMANTIC``."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except Failure:
        try:
            body = response.json()
        except ValueError:
            raise
        code = body.get("code") if isinstance(body, dict) else None
        if code not in SEMANTIC.get(case.operation.label, set()):
            raise
        if code == "unsafe_url" and body.get("reason") not in UNSAFE_REASONS:
            raise
        return None


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # Only a valid request's: changing an invalid one's query would hide what made it invalid.
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    if case.query and "wait" in case.query and _number(case.query["wait"], 0.1, 30):
        case.query["wait"] = "0.1"


def _number(value: Any, low: float, high: float) -> bool:
    try:
        return low < float(value) <= high
    except (TypeError, ValueError):
        return False
