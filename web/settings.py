"""Django's settings, made from the typed settings (``handlers.settings``) read once here.

Everything MagicToolbox itself reads is on ``MAGICTOOLBOX`` (a ``Settings``); what follows is
what Django and its apps need, derived from it. An invalid value stops start-up with one line
naming the variable.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import dj_database_url

from events.connections import split_url
from handlers.settings import VAR_DIR, Settings, load_or_exit

# The web refuses to start without a secret key outside the local deployment.
MAGICTOOLBOX = load_or_exit(check=Settings.secret_key)
BASE_DIR = VAR_DIR.parent
VAR_DIR.mkdir(exist_ok=True)


def _django_database(url: str) -> dict:
    """dj-database-url's config; on PostgreSQL our ``schema`` parameter becomes a search_path,
    as the event store and the read models read it (``events.connections``)."""
    if url.startswith("sqlite:"):
        return dj_database_url.parse(url)
    libpq_url, schema = split_url(url)
    config = dj_database_url.parse(libpq_url)
    config.setdefault("OPTIONS", {})["options"] = f"-c search_path={schema}"
    return config


# Off by default, locally too: a user never sees a traceback, and the API answers an unknown URL
# with problem+json rather than Django's debug page (DEBUG also records every SQL query).
DEBUG = MAGICTOOLBOX.DEBUG
SECRET_KEY = MAGICTOOLBOX.secret_key()
ALLOWED_HOSTS = list(MAGICTOOLBOX.ALLOWED_HOSTS)
# Behind a proxy that ends HTTPS (Azure Container Apps' ingress), the request Django sees is
# plain HTTP; the proxy's X-Forwarded-Proto says what the browser used. Trust it only there:
# anywhere else a client could claim HTTPS with that header.
if MAGICTOOLBOX.BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = list(MAGICTOOLBOX.CSRF_TRUSTED_ORIGINS)
DATABASES = {"default": _django_database(MAGICTOOLBOX.DATABASE_URL)}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: no CDN
    "django_eventstream",
    "bootstrap",  # django-bootstrap-static: Bootstrap 5's CSS and JS, served from here
    "web.core",
    "web.api",
    "web.ui",
    "web.eventgrid",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "web.urls"
ASGI_APPLICATION = "web.asgi.application"
WSGI_APPLICATION = "web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"  # `collectstatic` writes here; WhiteNoise needs it to exist
STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves the apps' static files straight from their folders: no collectstatic step,
# with DEBUG on or off.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tool-list"
LOGOUT_REDIRECT_URL = "tool-list"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "web.api.auth.TokenAuthentication",
        "web.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "web.api.throttling.AnonThrottle",
        "web.api.throttling.UserThrottle",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "web.api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MagicToolbox API",
    "DESCRIPTION": "Every tool run is an event-sourced execution.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Live updates (django-eventstream): who may read which channel is web.live's decision.
EVENTSTREAM_CHANNELMANAGER_CLASS = "web.live.ChannelManager"
if MAGICTOOLBOX.EVENTSTREAM_REDIS:
    _redis = urlsplit(MAGICTOOLBOX.EVENTSTREAM_REDIS)
    EVENTSTREAM_REDIS = {
        "host": _redis.hostname or "127.0.0.1",
        "port": _redis.port or 6379,
        "db": int((_redis.path or "/0").lstrip("/") or 0),
        "password": unquote(_redis.password) if _redis.password else None,  # keys hold "/"
        "ssl": _redis.scheme == "rediss",  # Azure Cache for Redis: rediss://:key@host:6380/0
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
