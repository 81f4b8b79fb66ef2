"""Views of the UI: thin pages over ``web.executions``, the same service glue as the API.

Each view parses the request, calls one function of ``executions`` and renders a template. Forms
work without JavaScript (a run posts to the tool page, an action to ``execution-action``, both
redirect); the script (``static/ui/main.js`` and the modules it imports) enhances them to use
the REST API and live updates instead. A ``Problem`` becomes a page with its HTTP status; another
user's execution is simply not found.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.authtoken.models import Token

from services.problems import Problem
from services.tools.base import BaseTool
from web import executions
from web.api.throttling import submit_wait
from web.parts import parts
from web.ui.forms import SignupForm, params_form, upload_help
from web.ui.templatetags.ui_extras import category_label

ACTIONS = ("cancel", "retry", "replay", "delete")
SUBMITS = ("retry", "replay")  # actions that start a run: they count as submits
HISTORY_SIZE = 10
PANEL_ACTIONS = [
    ("cancel", "Cancel run"),
    ("retry", "Retry"),
    ("replay", "Re-run"),
    ("delete", "Delete"),
]


def problem_page(request: HttpRequest, problem: Problem) -> HttpResponse:
    """A friendly page for a ``Problem``, with its status (a 404 says no more than Django's)."""
    return render(request, "ui/problem.html", {"problem": problem}, status=problem.status)


def throttled(request: HttpRequest) -> HttpResponse | None:
    """The 429 page when this user's submits are over ``API_THROTTLE_SUBMIT`` (the API's
    counter: a run from a form, a retry or a re-run counts as a submit there too); else None."""
    wait = submit_wait(request.user)
    if wait is None:
        return None
    seconds = math.ceil(wait)
    problem = Problem(
        "throttled",
        f"you have started too many runs in a short time: try again in {seconds} seconds",
        429,
    )
    response = problem_page(request, problem)
    response["Retry-After"] = str(seconds)
    return response


def _tool(slug: str) -> BaseTool:
    try:
        return parts().registry.get(slug)
    except LookupError:
        raise Http404(f"there is no tool {slug!r}") from None


def _matches(tool: BaseTool, query: str) -> bool:
    text = f"{tool.name} {tool.description} {tool.slug} {tool.category}".casefold()
    return all(word in text for word in query.casefold().split())


def tool_list(request: HttpRequest) -> HttpResponse:
    """All tools as cards under a heading per category. ``?q=`` filters without JavaScript:
    the cards that do not match are rendered ``hidden``, so the script can widen the search."""
    query = request.GET.get("q", "").strip()
    registry = parts().registry
    groups = []
    shown = 0
    for category in registry.categories():
        tools = [(t, _matches(t, query)) for t in registry if t.category == category]
        matching = sum(match for _, match in tools)
        shown += matching
        groups.append(
            {
                "slug": category,
                "label": category_label(category),
                "tools": tools,
                "matching": matching,
            }
        )
    context = {
        "groups": groups,
        "query": query,
        "shown": shown,
        "total": len(registry),
        "nav": "tools",
    }
    return render(request, "ui/tool_list.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
def tool_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The tool's page: its form, status panel and history; a POST runs it (the no-JS path)."""
    tool = _tool(slug)
    schema = tool.Params.model_json_schema()
    if request.method == "POST" and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    form = params_form(schema, request.POST if request.method == "POST" else None)
    problem: Problem | None = None
    status = 200
    if request.method == "POST" and (refused := throttled(request)) is not None:
        return refused
    if request.method == "POST":
        upload = request.FILES.get("file")
        if tool.takes_input and upload is None:
            form.add_error(None, "Choose a file to run this tool on.")
        if form.is_valid():
            try:
                execution, _ = executions.submit(
                    request.user, tool.slug, form.cleaned_params(), upload
                )
            except Problem as exc:
                problem, status = exc, exc.status
                _field_errors(form, exc)
            else:
                return redirect("execution-detail", execution_id=execution["id"])
        else:
            status = 400
    history: list[dict[str, Any]] = []
    if request.user.is_authenticated:
        history = executions.recent(request.user, tool=tool.slug, limit=HISTORY_SIZE)
    context = {
        "tool": tool,
        "form": form,
        "problem": problem,
        "history": history,
        "accept": ",".join(tool.accepts),
        "upload_help": upload_help(tool.accepts, tool.upload_limit),
        "sample_id": UUID(int=0),
        "panel_actions": [("cancel", "Cancel run"), ("retry", "Retry")],
        "nav": "tools",
    }
    return render(request, "ui/tool_detail.html", context, status=status)


def _field_errors(form: Any, problem: Problem) -> None:
    """Put a refusal's field errors (``{"field": "params.text", "message": …}``) at the fields."""
    for error in getattr(problem, "extra", {}).get("errors") or []:
        if not isinstance(error, dict):
            continue
        name = str(error.get("field", "")).removeprefix("params.")
        if name in form.fields and error.get("message"):
            form.add_error(name, str(error["message"]))


def _submitted_params(timeline: list[dict[str, Any]]) -> dict[str, Any] | None:
    for event in timeline:
        if event.get("type", "").endswith(".Submitted"):
            return (event.get("data") or {}).get("params", {})
    return None


@login_required
def execution_detail(request: HttpRequest, execution_id: UUID) -> HttpResponse:
    """The audit view: the execution's summary and its event timeline, followed live."""
    try:
        execution = executions.get(request.user, execution_id)
        timeline = executions.timeline(request.user, execution_id)
    except Problem as exc:
        return problem_page(request, exc)
    context = {
        "execution": execution,
        "timeline": timeline,
        "params": _submitted_params(timeline),
        "sample_id": UUID(int=0),
        "panel_actions": PANEL_ACTIONS,
    }
    return render(request, "ui/execution_detail.html", context)


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@login_required
@require_POST
def execution_action(request: HttpRequest, execution_id: UUID, action: str) -> HttpResponse:
    """Cancel, retry, re-run (replay) or delete without JavaScript; back to where it came from."""
    if action not in ACTIONS:
        raise Http404(f"there is no action {action!r}")
    if action in SUBMITS and (refused := throttled(request)) is not None:
        return refused
    try:
        execution = getattr(executions, action)(request.user, execution_id)
    except Problem as exc:
        return problem_page(request, exc)
    if action == "replay":  # the new execution is the one to watch
        return redirect(execution["links"]["page"])
    if action == "delete":  # its page is gone (404): back where it came from, else its tool
        tool_page = reverse("tool-detail", args=[execution["tool"]])
        target = _next_url(request, tool_page)
        return redirect(tool_page if target == execution["links"]["page"] else target)
    return redirect(_next_url(request, execution["links"]["page"]))


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in with it."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = ""
    if request.user.is_authenticated:
        return redirect(target or settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(target or settings.LOGIN_REDIRECT_URL)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "next": target, "nav": "signup"}
    return render(request, "registration/signup.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The user's API token: whether one exists; a POST creates (or replaces) it and shows it
    once, or revokes it."""
    token = Token.objects.filter(user=request.user).first()
    new_key: str | None = None
    if request.method == "POST":
        if token is not None:
            token.delete()
            token = None
        if request.POST.get("action") != "revoke":
            token = Token.objects.create(user=request.user)
            new_key = token.key
    context = {
        "token": token,
        "new_key": new_key,
        "revoked": request.method == "POST" and token is None,
        "api_root": request.build_absolute_uri("/api/v1/"),
        "docs_url": _docs_url(),
        "nav": "account",
    }
    response = render(request, "ui/account.html", context)
    if new_key:
        add_never_cache_headers(response)  # a secret: never from a cache or the back button
    return response


def _docs_url() -> str | None:
    try:
        return reverse("api-docs")
    except NoReverseMatch:  # the API is mounted elsewhere, or not at all
        return None
