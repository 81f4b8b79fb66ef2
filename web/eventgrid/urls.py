"""``/eventgrid/events``: the one endpoint an Event Grid subscription pushes to."""

from django.urls import path

from web.eventgrid import views

urlpatterns = [
    path("events", views.receive, name="eventgrid-events"),
]
