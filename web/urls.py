"""URL routes: the admin and the health check. The API and UI arrive with their issues."""

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from web.core import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
]

# Serves the admin's static files under `make run` (uvicorn); a no-op unless DEBUG is on.
urlpatterns += staticfiles_urlpatterns()
