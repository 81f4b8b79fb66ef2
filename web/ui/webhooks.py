"""The UI's webhook pages: a user's endpoints (add, enable or disable, rotate the secret,
delete) and each endpoint's delivery log (redeliver one message, recover what failed).

Plain forms that post and redirect, so everything works without JavaScript; every change goes
through ``web.webhooks``, the same glue as the REST API. A new signing secret is put in the
session by the POST that made it and taken out by the page that shows it, so it is shown once
and a reload neither shows it again nor makes another endpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from events.catalog import TYPE_PREFIX
from services.problems import Problem
from web import webhooks
from web.parts import parts
from web.ui.templatetags.ui_extras import category_label
from web.ui.views import problem_page
from web.webhooks import EVENT_NAMES, MAX_DESCRIPTION, MAX_URL, MESSAGE_STATUSES

SECRET_KEY = "webhook_secret"  # the session key of a secret waiting to be shown once
ACTIONS = ("enable", "disable", "rotate", "recover")
# The field a refusal belongs to, by its code.
PROBLEM_FIELDS = {"unsafe_url": "url", "invalid_event_type": "event_types", "unknown_tool": "tools"}


def _tool_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    registry = parts().registry
    return [
        (category_label(c), [(t.slug, t.name) for t in registry if t.category == c])
        for c in registry.categories()
    ]


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=MAX_URL,
        widget=forms.URLInput(
            attrs={"class": "form-control", "placeholder": "https://", "spellcheck": "false"}
        ),
        help_text="Where to POST the events: https on a public address.",
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.TextInput(attrs={"class": "form-control"}),
        help_text="Optional: what it is for.",
    )
    event_types = forms.MultipleChoiceField(
        label="Event types",
        required=False,
        choices=[(TYPE_PREFIX + name, name) for name in EVENT_NAMES],
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        help_text="None ticked: every event.",
    )
    tools = forms.MultipleChoiceField(
        label="Tools",
        required=False,
        widget=forms.SelectMultiple(attrs={"class": "form-select", "size": 8}),
        help_text="None chosen: every tool. Hold Ctrl (⌘ on a Mac) to choose several.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tools"].choices = _tool_choices()  # type: ignore[attr-defined]


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed since (UTC)",
        widget=forms.DateTimeInput(
            attrs={"class": "form-control", "type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
        ),
    )


def _endpoint_or_404(request: HttpRequest, endpoint_id: UUID) -> Any:
    try:
        return webhooks.get(request.user, str(endpoint_id))
    except Problem:
        raise Http404("there is no such webhook endpoint") from None


def _event_names(endpoint: Any) -> list[str]:
    return [t.rsplit(".", 1)[-1] for t in endpoint.event_types]


def _tool_names(endpoint: Any) -> list[str]:
    registry = parts().registry
    names = []
    for slug in endpoint.tools:
        try:
            names.append(registry.get(slug).name)
        except LookupError:
            names.append(slug)
    return names


def _rows(endpoints: list[Any]) -> list[dict[str, Any]]:
    return [
        {"endpoint": e, "event_names": _event_names(e), "tool_names": _tool_names(e)}
        for e in endpoints
    ]


def _render_secret(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """Render a page that may show a secret once (taken from the session); never cached."""
    shown = request.session.pop(SECRET_KEY, None)
    response = render(request, template, {**context, "shown": shown})
    if shown:
        add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_list(request: HttpRequest) -> HttpResponse:
    """The user's endpoints and the form to add one (up to ``WEBHOOKS_PER_USER``); a POST adds
    it."""
    form = WebhookForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                endpoint, secret = webhooks.create(request.user, **form.cleaned_data)
            except Problem as exc:
                form.add_error(PROBLEM_FIELDS.get(exc.code), exc.detail)
            else:
                request.session[SECRET_KEY] = {
                    "endpoint": endpoint.id,
                    "secret": secret,
                    "created": True,
                }
                return redirect(f"{reverse('webhooks')}#endpoint-{endpoint.id}")
        status = 400
    rows = _rows(webhooks.endpoints(request.user))
    limit = parts().webhooks.per_user
    context = {
        "rows": rows,
        "form": form,
        "limit": limit,
        "full": len(rows) >= limit,
        "nav": "webhooks",
    }
    response = _render_secret(request, "ui/webhooks.html", context)
    response.status_code = status
    return response


@login_required
def webhook_detail(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    """One endpoint and its delivery log: the latest messages with their attempts."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    status = request.GET.get("status", "")
    if status not in MESSAGE_STATUSES:
        status = ""
    log = webhooks.deliveries(request.user, endpoint.id, status=status or None, limit=50)
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    context = {
        "row": _rows([endpoint])[0],
        "endpoint": endpoint,
        "log": log,
        "status": status,
        "statuses": MESSAGE_STATUSES,
        "recover_form": RecoverForm(initial={"since": since.replace(tzinfo=None)}),
        "retention_days": parts().settings.WEBHOOK_MESSAGE_RETENTION_DAYS,
        "nav": "webhooks",
    }
    return _render_secret(request, "ui/webhooks_detail.html", context)


@login_required
@require_POST
def webhook_action(request: HttpRequest, endpoint_id: UUID, action: str) -> HttpResponse:
    """Enable, disable, rotate the secret or recover failed messages; back to a page."""
    if action not in ACTIONS:
        raise Http404(f"there is no action {action!r}")
    endpoint = _endpoint_or_404(request, endpoint_id)
    detail = reverse("webhook-detail", args=[endpoint.id])
    listing = f"{reverse('webhooks')}#endpoint-{endpoint.id}"
    back = detail if request.POST.get("next") == "detail" else listing
    try:
        if action in ("enable", "disable"):
            webhooks.update(request.user, endpoint.id, enabled=action == "enable")
            messages.success(request, f"{endpoint.url} is {action}d.")
        elif action == "rotate":
            rotated = webhooks.rotate(request.user, endpoint.id)
            request.session[SECRET_KEY] = {
                "endpoint": endpoint.id,
                "secret": rotated.secret,
                "previous_valid_until": rotated.previous_valid_until.isoformat(),
            }
        else:
            form = RecoverForm(request.POST)
            if not form.is_valid():
                messages.error(request, "Give the time to recover from, as YYYY-MM-DD HH:MM.")
                return redirect(detail)
            count = webhooks.recover(request.user, endpoint.id, form.cleaned_data["since"])
            noun = "message" if count == 1 else "messages"
            messages.success(request, f"{count} failed {noun} queued to be sent again.")
            return redirect(detail)
    except Problem as exc:
        return problem_page(request, exc)
    return redirect(back)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_delete(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    """A confirmation page (no JavaScript needed); its POST deletes the endpoint."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    if request.method == "POST":
        webhooks.delete(request.user, endpoint.id)
        messages.success(request, f"The endpoint {endpoint.url} was deleted.")
        return redirect("webhooks")
    context = {"endpoint": endpoint, "nav": "webhooks"}
    return render(request, "ui/webhooks_delete.html", context)


@login_required
@require_POST
def webhook_redeliver(request: HttpRequest, endpoint_id: UUID, message_id: UUID) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    try:
        message = webhooks.redeliver(request.user, endpoint.id, str(message_id))
    except Problem as exc:
        return problem_page(request, exc)
    name = message["event_type"].rsplit(".", 1)[-1]
    messages.success(request, f"The {name} message is queued to be sent again.")
    return redirect(f"{reverse('webhook-detail', args=[endpoint.id])}#message-{message['id']}")
