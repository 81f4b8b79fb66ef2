"""Forms of the UI: a tool's parameter form, generated from its pydantic model's JSON Schema.

``params_form`` turns ``Params.model_json_schema()`` into a Django form: an enum becomes a
``<select>``, an integer or number an ``<input type=number>`` with the schema's bounds, a boolean
a checkbox, a string a text input (a ``<textarea>`` for long text), a free object a JSON
``<textarea>``. Each control carries ``data-param`` and ``data-type`` so the page's script can
build the same ``params`` object the no-JS path builds with ``cleaned_params``; the tool's own
model stays the judge of what is valid (the service validates again).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.forms.utils import ErrorDict
from django.template.defaultfilters import filesizeformat

# Parameters named like this hold long text (a document, JSON, base64): a textarea fits them.
LONG_TEXT_NAMES = frozenset({"text", "data", "json", "content", "document", "body"})
PREFIX = "params"


def _nullable(spec: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``anyOf: [X, {"type": "null"}]`` (pydantic's ``X | None``) → ``(X, True)``."""
    options = spec.get("anyOf")
    if not options:
        return spec, False
    others = [o for o in options if o.get("type") != "null"]
    nullable = len(others) < len(options)
    if len(others) == 1:
        merged = {**others[0], **{k: v for k, v in spec.items() if k != "anyOf"}}
        return merged, nullable
    return {"type": "json", **{k: v for k, v in spec.items() if k != "anyOf"}}, nullable


def _label(name: str, spec: dict[str, Any]) -> str:
    title = spec.get("title") or name.replace("_", " ")
    return title[:1].upper() + title[1:].lower()


def _range_help(spec: dict[str, Any]) -> str:
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        return f"From {low} to {high}."
    if low is not None:
        return f"At least {low}."
    if high is not None:
        return f"At most {high}."
    return ""


def _help(spec: dict[str, Any], *parts: str) -> str:
    return " ".join(p for p in (spec.get("description", ""), *parts) if p).strip()


def _field(name: str, raw: dict[str, Any], required: bool) -> tuple[forms.Field, str]:
    """One form field for one schema property, and the ``data-type`` the script reads."""
    spec, nullable = _nullable(raw)
    optional = not required
    default = spec.get("default")
    label = _label(name, spec)
    kind = spec.get("type")
    attrs: dict[str, Any] = {"data-param": name}
    optional_note = "Optional." if optional and default is None and kind != "boolean" else ""

    if "enum" in spec:
        values = list(spec["enum"])
        data_type = "integer" if all(isinstance(v, int) for v in values) else "string"
        choices = [(v, str(v)) for v in values]
        if optional and default is None:
            choices.insert(0, ("", "(none)"))
        field: forms.Field = forms.TypedChoiceField(
            choices=choices,
            coerce=int if data_type == "integer" else str,
            empty_value=None,
            required=required,
            initial=default,
            widget=forms.Select(attrs={**attrs, "class": "form-select"}),
            help_text=_help(spec, optional_note),
        )
    elif kind in ("integer", "number"):
        data_type = kind
        number_attrs = {**attrs, "class": "form-control", "step": spec.get("multipleOf", 1)}
        if kind == "number":
            number_attrs["step"] = spec.get("multipleOf", "any")
        field_class = forms.IntegerField if kind == "integer" else forms.FloatField
        field = field_class(
            required=required,
            initial=default,
            min_value=spec.get("minimum"),
            max_value=spec.get("maximum"),
            widget=forms.NumberInput(attrs=number_attrs),
            help_text=_help(spec, _range_help(spec), optional_note),
        )
    elif kind == "boolean":
        data_type = "boolean"
        field = forms.BooleanField(
            required=False,
            initial=bool(default),
            widget=forms.CheckboxInput(attrs={**attrs, "class": "form-check-input"}),
            help_text=_help(spec),
        )
    elif kind == "string":
        data_type = "string"
        long_text = name in LONG_TEXT_NAMES
        text_attrs = {**attrs, "class": "form-control", "spellcheck": "false"}
        if spec.get("maxLength") and not long_text:
            text_attrs["maxlength"] = spec["maxLength"]
        widget = (
            forms.Textarea(attrs={**text_attrs, "rows": 6, "class": "form-control font-monospace"})
            if long_text
            else forms.TextInput(attrs=text_attrs)
        )
        field = forms.CharField(
            required=required,
            strip=False,  # leading spaces of a text to encode or hash are part of it
            max_length=spec.get("maxLength"),
            initial=default,
            empty_value=None if nullable or optional else "",
            widget=widget,
            help_text=_help(spec, optional_note),
        )
    else:  # an object, an array, or a union: JSON text
        data_type = "json"
        field = forms.JSONField(
            required=required,
            initial=default,
            widget=forms.Textarea(
                attrs={**attrs, "rows": 5, "class": "form-control font-monospace"}
            ),
            help_text=_help(spec, "As JSON.", optional_note),
        )
    field.label = label
    field.widget.attrs["data-type"] = data_type
    if required and data_type != "boolean":
        field.widget.attrs["data-required"] = "true"
    return field, data_type


class ParamsForm(forms.Form):
    """The parameter form of one tool; build it with ``params_form``."""

    # Underscored: a parameter may be called "schema" (pydantic fields never start with "_").
    _json_schema: ClassVar[dict[str, Any]] = {}
    _param_types: ClassVar[dict[str, str]] = {}

    def cleaned_params(self) -> dict[str, Any]:
        """The parameters as the service takes them; an empty optional field is left out, so
        the tool's default applies."""
        params: dict[str, Any] = {}
        for name, value in self.cleaned_data.items():
            if self._param_types.get(name) == "boolean" or value not in (None, ""):
                params[name] = value
            elif name in self._json_schema.get("required", []):
                params[name] = value if value is not None else ""
        return params


def params_form_class(schema: dict[str, Any]) -> type[ParamsForm]:
    """A form class for a ``model_json_schema()``: one field per property, in schema order."""
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    types: dict[str, str] = {}
    for name, spec in schema.get("properties", {}).items():
        fields[name], types[name] = _field(name, spec, name in required)
    attrs = {**fields, "_json_schema": schema, "_param_types": types}
    return type(f"{schema.get('title', 'Tool')}Form", (ParamsForm,), attrs)


def params_form(schema: dict[str, Any], data: Any = None) -> ParamsForm:
    return params_form_class(schema)(data=data, prefix=PREFIX)


def upload_help(accepts: dict[str, str], limit: int) -> str:
    """``Accepted: .png, .jpg. Up to 50.0 MB.``"""
    return f"Accepted: {', '.join(accepts)}. Up to {filesizeformat(limit)}."


class SignupForm(UserCreationForm):
    """Django's sign-up form with Bootstrap classes and the right autocomplete hints."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hints = {"username": "username", "password1": "new-password", "password2": "new-password"}
        for name, field in self.fields.items():
            field.widget.attrs.update({"class": "form-control", "autocomplete": hints.get(name)})


class LoginForm(AuthenticationForm):
    """Django's log-in form with Bootstrap classes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs["class"] = "form-control"

    @classmethod
    def locked(cls, request: Any, username: str, message: str) -> LoginForm:
        """The form as a locked-out sign-in sees it: the name kept, the reason as its error and
        no password check (validating would authenticate, which the lockout forbids)."""
        form = cls(request, initial={"username": username})
        form._errors = ErrorDict(
            {forms.forms.NON_FIELD_ERRORS: form.error_class([message], error_class="nonfield")}
        )
        return form
