"""The ASGI application (``uvicorn web.asgi:application``); what ``make run`` serves.

With ``FUNCTIONS_IN_PROCESS`` (the local default) the same process runs the projector and the
local Functions host, started on the server's lifespan startup (``web.runtime``).
"""

import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

django_application = get_asgi_application()

# WhiteNoise hands Django static files as sync iterators, which Django reads whole before sending
# under ASGI, and says so for every file. Our files are small; downloads of results use an async
# iterator (web.api.views) and never trigger this.
warnings.filterwarnings(
    "ignore", message="StreamingHttpResponse must consume synchronous iterators", category=Warning
)

from web.runtime import with_background  # noqa: E402 - needs Django set up first

application = with_background(django_application)
