"""App config of the UI: templates, static files and template tags under the ``ui`` label."""

from django.apps import AppConfig


class UiConfig(AppConfig):
    name = "web.ui"
    label = "ui"
