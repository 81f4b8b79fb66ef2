"""The REST API, ``/api/v1/``: tools, executions and the event feed, for programs and the UI."""
