"""The ASGI application (``uvicorn web.asgi:application``); what ``make run`` serves.

With ``FUNCTIONS_IN_PROCESS`` (the local default) the same process runs the projector and the
local Functions host, started on the server's lifespan startup (``web.runtime``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

django_application = get_asgi_application()

from web.runtime import with_background  # noqa: E402 - needs Django set up first

application = with_background(django_application)
