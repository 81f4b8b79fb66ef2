"""URL routes of the UI, mounted at the site root: tools, executions, accounts and webhooks."""

from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from web.ui import views, webhooks
from web.ui.forms import LoginForm

urlpatterns = [
    path("", views.tool_list, name="tool-list"),
    path("tools/<slug:slug>/", views.tool_detail, name="tool-detail"),
    path("executions/<uuid:execution_id>/", views.execution_detail, name="execution-detail"),
    path(
        "executions/<uuid:execution_id>/<slug:action>/",
        views.execution_action,
        name="execution-action",
    ),
    path("accounts/", views.account, name="account"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/<uuid:endpoint_id>/", webhooks.webhook_detail, name="webhook-detail"),
    path("webhooks/<uuid:endpoint_id>/delete/", webhooks.webhook_delete, name="webhook-delete"),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/<uuid:message_id>/redeliver/",
        webhooks.webhook_redeliver,
        name="webhook-redeliver",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/<slug:action>/",
        webhooks.webhook_action,
        name="webhook-action",
    ),
    path("accounts/signup/", views.signup, name="signup"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            authentication_form=LoginForm,
            redirect_authenticated_user=True,
            extra_context={"nav": "login"},
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Browsers ask for /favicon.ico whatever the page links: point them at the SVG.
    path("favicon.ico", RedirectView.as_view(url=static("ui/favicon.svg"), permanent=True)),
]
