"""What the OpenAPI schema says beyond the views' annotations: the links from a created resource
to what can be done with it, and the headers that come with some answers.

drf-spectacular runs ``postprocess`` on the finished document (``POSTPROCESSING_HOOKS``).
Links let a client, and schemathesis's stateful tests, follow a submit to the execution it made
(``$response.body#/id``) and on to its events, actions and deletion.
"""

from __future__ import annotations

from typing import Any

# Where a new execution or endpoint comes from → what takes its id.
EXECUTION_FOLLOWERS = (
    "executions_retrieve",
    "executions_events",
    "executions_download",
    "executions_cancel",
    "executions_retry",
    "executions_replay",
    "executions_destroy",
)
WEBHOOK_FOLLOWERS = (
    "webhooks_retrieve",
    "webhooks_partial_update",
    "webhooks_deliveries",
    "webhooks_rotate_secret",
    "webhooks_recover",
    "webhooks_destroy",
)
MAKERS = {
    "executions_create": EXECUTION_FOLLOWERS,
    "executions_replay": EXECUTION_FOLLOWERS,
    "webhooks_create": WEBHOOK_FOLLOWERS,
}

LOCATION = {
    "description": "the new resource's URL",
    "schema": {"type": "string"},
    "required": True,
}
RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}


def _link(target: str) -> dict[str, Any]:
    return {
        "operationId": target,
        "parameters": {"id": "$response.body#/id"},
        "description": f"{target} of the resource just made",
    }


def _tool_slugs(node: Any, slugs: list[str]) -> None:
    """Every string schema marked ``x-tool-slug`` becomes an enum of this deployment's tools."""
    if isinstance(node, dict):
        if node.pop("x-tool-slug", False):
            node["enum"] = slugs
        for value in node.values():
            _tool_slugs(value, slugs)
    elif isinstance(node, list):
        for value in node:
            _tool_slugs(value, slugs)


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """Adds links to what makes a resource, ``Location`` to its answers, ``Retry-After`` to
    429 and 503 answers, and the deployment's tool slugs where a tool is named."""
    from web.parts import parts

    _tool_slugs(result, sorted(tool.slug for tool in parts().registry))
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            followers = MAKERS.get(operation.get("operationId", ""), ())
            for status, response in operation["responses"].items():
                if status in ("201", "202") and followers:
                    response["links"] = {name: _link(name) for name in followers}
                    response.setdefault("headers", {})["Location"] = LOCATION
                elif status in ("429", "503"):
                    response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
    return result
