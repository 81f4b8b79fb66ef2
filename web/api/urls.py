"""``/api/v1/`` routes, the OpenAPI schema at ``/api/schema/`` and Swagger UI at ``/api/docs/``
(its files served from the project by drf-spectacular-sidecar: no CDN)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from web.api import views, webhooks

EXECUTION = "executions/<str:id>/"
WEBHOOK = "webhooks/<str:id>/"

v1 = [
    path("tools/", views.ToolList.as_view(), name="api-tool-list"),
    path("tools/<str:slug>/", views.ToolDetail.as_view(), name="api-tool-detail"),
    path("executions/", views.ExecutionList.as_view(), name="api-execution-list"),
    path(EXECUTION, views.ExecutionDetail.as_view(), name="api-execution-detail"),
    path(f"{EXECUTION}events/", views.ExecutionEvents.as_view(), name="api-execution-events"),
    path(f"{EXECUTION}download/", views.ExecutionDownload.as_view(), name="api-execution-download"),
    path(f"{EXECUTION}cancel/", views.ExecutionCancel.as_view(), name="api-execution-cancel"),
    path(f"{EXECUTION}retry/", views.ExecutionRetry.as_view(), name="api-execution-retry"),
    path(f"{EXECUTION}replay/", views.ExecutionReplay.as_view(), name="api-execution-replay"),
    path("events/", views.EventFeed.as_view(), name="api-event-feed"),
    path("webhooks/", webhooks.WebhookList.as_view(), name="api-webhook-list"),
    path(WEBHOOK, webhooks.WebhookDetail.as_view(), name="api-webhook-detail"),
    path(
        f"{WEBHOOK}rotate-secret/",
        webhooks.WebhookRotateSecret.as_view(),
        name="api-webhook-rotate-secret",
    ),
    path(
        f"{WEBHOOK}deliveries/", webhooks.WebhookDeliveries.as_view(), name="api-webhook-deliveries"
    ),
    path(
        f"{WEBHOOK}deliveries/<str:message_id>/redeliver/",
        webhooks.WebhookRedeliver.as_view(),
        name="api-webhook-redeliver",
    ),
    path(f"{WEBHOOK}recover/", webhooks.WebhookRecover.as_view(), name="api-webhook-recover"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script as a file (?script=): the CSP runs no
    # inline script.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="ui/swagger_ui.html"
        ),
        name="api-docs",
    ),
]
