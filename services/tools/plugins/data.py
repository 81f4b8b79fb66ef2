"""JSON tools: pretty-print (or minify) a JSON text, and check that a text is valid JSON.

``json-format`` fails on invalid JSON with the line and column of the problem. ``json-validate``
does not fail on invalid JSON: the verdict *is* its answer, a short JSON report such as
``{"valid": false, "errors": [...]}``. Given a ``schema`` it also checks the document against
that JSON Schema when the ``jsonschema`` package is installed; without it, it checks the syntax
only and says so in the report (``"schema_checked": false``) rather than claiming a pass.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.tools.base import (
    MB,
    BaseTool,
    InvalidInput,
    InvalidParams,
    OutputKind,
    ToolContext,
)

try:  # optional: schema checks only where the package is installed
    import jsonschema
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None

MAX_ERRORS = 20  # a report lists this many schema errors at most, to stay short
MAX_MESSAGE = 300


class FormatParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MB, description="The JSON text.")
    indent: int = Field(default=2, ge=0, le=8, description="Spaces per level; 0 minifies.")
    sort_keys: bool = False


class ValidateParams(BaseModel):
    # "schema" would shadow BaseModel.schema(), so the field has another name and an alias.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    text: str = Field(max_length=MB, description="The JSON text.")
    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description="A JSON Schema the document must match."
    )

    @field_validator("json_schema")
    @classmethod
    def _local_refs_only(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        # Older jsonschema releases fetch remote $refs over HTTP: never let a user aim us at a URL.
        if schema is not None and (ref := _remote_ref(schema)):
            raise ValueError(f"only local $refs (starting with #) are allowed, not {ref!r}")
        return schema


class JsonFormat(BaseTool):
    slug = "json-format"
    name = "Format JSON"
    category = "data"
    description = "Pretty-print JSON with 0-8 spaces of indent (0 minifies), optionally sorted."
    mode = "sync"
    Params = FormatParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: FormatParams = ctx.params  # type: ignore[assignment]
        try:
            document = parse_json(params.text)
        except JsonSyntaxError as exc:
            raise InvalidInput(str(exc)) from None
        if params.indent == 0:
            text = json.dumps(
                document, ensure_ascii=False, sort_keys=params.sort_keys, separators=(",", ":")
            )
        else:
            text = json.dumps(
                document, ensure_ascii=False, sort_keys=params.sort_keys, indent=params.indent
            )
        ctx.output.text(text)  # a long one becomes a file: the runner decides


class JsonValidate(BaseTool):
    slug = "json-validate"
    name = "Validate JSON"
    category = "data"
    description = (
        "Check that a text is valid JSON and, given a JSON Schema, that it matches the schema. "
        'Answers with a report such as {"valid": false, "errors": [...]}.'
    )
    mode = "sync"
    Params = ValidateParams
    output = OutputKind.TEXT

    def run(self, ctx: ToolContext) -> None:
        params: ValidateParams = ctx.params  # type: ignore[assignment]
        try:
            document = parse_json(params.text)
        except JsonSyntaxError as exc:
            report: dict[str, Any] = {"valid": False, "errors": [exc.as_report()]}
            if params.json_schema is not None:
                report["schema_checked"] = False
            ctx.output.text(json.dumps(report))
            return
        report = {"valid": True}
        if params.json_schema is not None:
            if jsonschema is None:
                report["schema_checked"] = False
                report["note"] = "jsonschema is not installed here: only the syntax was checked"
            else:
                errors = schema_errors(document, params.json_schema)
                report = {"valid": not errors, "schema_checked": True}
                if errors:
                    report["errors"] = errors
        ctx.output.text(json.dumps(report))


class JsonSyntaxError(ValueError):
    """Invalid JSON; ``line`` and ``column`` (1-based) say where, when it is a syntax error."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column

    def as_report(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": str(self)}
        if self.line is not None:
            error.update(line=self.line, column=self.column)
        return error


def parse_json(text: str) -> Any:
    """Strict JSON: NaN and Infinity (which Python accepts) are refused, as JSON says."""

    def refuse_constant(name: str) -> Any:
        raise JsonSyntaxError(f"invalid JSON: {name} is not a JSON value")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except JsonSyntaxError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            exc.lineno,
            exc.colno,
        ) from None
    except RecursionError:
        raise JsonSyntaxError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise JsonSyntaxError(f"invalid JSON: {str(exc)[:MAX_MESSAGE]}") from None


def schema_errors(document: Any, schema: dict[str, Any]) -> list[dict[str, str]]:
    """The document's schema violations (at most MAX_ERRORS), each with a JSON Pointer path."""
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidParams(f"the schema is not a valid JSON Schema: {exc.message}") from None
    errors = []
    for error in validator_class(schema).iter_errors(document):
        message = error.message[:MAX_MESSAGE]
        errors.append({"path": _pointer(error.absolute_path), "message": message})
        if len(errors) == MAX_ERRORS:
            break
    return errors


def _pointer(path: Any) -> str:
    """An RFC 6901 JSON Pointer ("" is the whole document)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _remote_ref(node: Any) -> str | None:
    """The first ``$ref`` in a schema that points outside it, if any."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return ref
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            if found := _remote_ref(child):
                return found
    return None
