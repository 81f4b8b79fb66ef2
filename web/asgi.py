"""The ASGI application (``uvicorn web.asgi:application``); what ``make run`` serves."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

application = get_asgi_application()
