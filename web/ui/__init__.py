"""The UI: Django templates over the same services as the API, with live status over SSE."""
