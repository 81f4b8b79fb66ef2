"""App config of the Event Grid receiver, under the ``eventgrid`` label."""

from django.apps import AppConfig


class EventGridConfig(AppConfig):
    name = "web.eventgrid"
    label = "eventgrid"
