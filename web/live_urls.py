"""``/live/`` SSE endpoints (django-eventstream); ``web.live.ChannelManager`` authorises them."""

from django.urls import path
from django_eventstream.views import events

urlpatterns = [
    path("me/", events, name="live-me"),
    path("executions/<uuid:execution_id>/", events, name="live-execution"),
]
