"""URL routes: the UI at the root, the REST API under ``/api/``, live updates under ``/live/``."""

from django.contrib import admin
from django.urls import include, path

from web.core import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("api/", include("web.api.urls")),
    path("live/", include("web.live_urls")),
    path("eventgrid/", include("web.eventgrid.urls")),
    path("", include("web.ui.urls")),
]

# problem+json for API paths, the UI's pages elsewhere.
handler400 = "web.api.problems.bad_request"
handler403 = "web.api.problems.permission_denied"
handler404 = "web.api.problems.not_found"
handler500 = "web.api.problems.server_error"
