"""Django settings, read once from the environment with defaults that run on one machine.

| variable | default |
|---|---|
| ``MAGICTOOLBOX_DEPLOYMENT`` | ``local``; the CloudEvents source is ``/magictoolbox/<name>`` |
| ``DEBUG`` | off (``DEBUG=1`` shows Django's debug pages while developing) |
| ``SECRET_KEY`` | for ``local``, a random key made on first start in ``var/secret-key``; |
|   | required elsewhere |
| ``ALLOWED_HOSTS`` | ``localhost,127.0.0.1,[::1]`` (comma-separated) |
| ``DATABASE_URL`` | ``sqlite:///<project root>/var/magictoolbox.sqlite3`` |
| ``EVENTSTORE_URL`` | ``DATABASE_URL`` (an optional ``?schema=NAME`` picks a PostgreSQL schema) |
| ``BLOB_STORAGE`` | ``<project root>/var/blobs``; or an Azure connection string / account URL |
| ``BLOB_SIGNING_KEY`` | ``SECRET_KEY``: signs the local backend's download links |
| ``FUNCTIONS_IN_PROCESS`` | on for ``local``: the ASGI process runs the projector and Functions |
|   | host too (``magictoolbox functions`` runs them on their own) |
| ``EVENTSTREAM_REDIS`` | unset: live updates reach the browsers of this process only; a Redis |
|   | URL (``redis://host:6379/0``) shares them between processes |
| ``API_THROTTLE_ANON`` / ``_USER`` / ``_SUBMIT`` | ``60/min`` / ``1200/min`` / ``120/min`` |
| ``DEMO_ACCOUNT`` | on for the embedded default (``local`` on SQLite): ``magictoolbox run`` |
|   | with no users yet creates a ``demo`` account and prints its password |
| ``WEB_THREADS`` | ``16``: threads serving ordinary requests (``web.asgi``) |
| ``RUN_HOST`` / ``RUN_PORT`` | ``127.0.0.1`` / ``8000``: where ``magictoolbox run`` listens |
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _django_database(url: str) -> dict:
    """dj-database-url's config, with our ``schema`` query parameter turned into a search_path."""
    # Split by hand: urlsplit/urlunsplit would turn sqlite:////abs/path into a relative path.
    base, _, query_text = url.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), None)
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    config = dj_database_url.parse(f"{base}?{rest}" if rest else base)
    if schema:
        config.setdefault("OPTIONS", {})["options"] = f"-c search_path={schema}"
    return config


MAGICTOOLBOX_DEPLOYMENT = os.environ.get("MAGICTOOLBOX_DEPLOYMENT", "local")
MAGICTOOLBOX_SOURCE = f"/magictoolbox/{MAGICTOOLBOX_DEPLOYMENT}"

# Off by default, locally too: a user never sees a traceback, and the API answers an unknown URL
# with problem+json rather than Django's debug page (DEBUG also records every SQL query).
DEBUG = _env_bool("DEBUG", default=False)


def _local_secret_key() -> str:
    """The local deployment's own random key, made once and kept in var/ (mode 0600)."""
    path = VAR_DIR / "secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import secrets

        key = secrets.token_urlsafe(50)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it just now
            return path.read_text().strip()
        with os.fdopen(fd, "w") as out:
            out.write(key)
        return key


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if MAGICTOOLBOX_DEPLOYMENT != "local":
        raise ImproperlyConfigured("SECRET_KEY must be set outside the local deployment")
    SECRET_KEY = _local_secret_key()
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Behind a proxy that ends HTTPS (Azure Container Apps' ingress), the request Django sees is
# plain HTTP; the proxy's X-Forwarded-Proto says what the browser used. Trust it only there:
# anywhere else a client could claim HTTPS with that header.
if _env_bool("BEHIND_HTTPS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'magictoolbox.sqlite3'}"
DATABASES = {"default": _django_database(DATABASE_URL)}
EVENTSTORE_URL = os.environ.get("EVENTSTORE_URL") or DATABASE_URL
BLOB_STORAGE = os.environ.get("BLOB_STORAGE") or str(VAR_DIR / "blobs")
BLOB_SIGNING_KEY = os.environ.get("BLOB_SIGNING_KEY") or SECRET_KEY
FUNCTIONS_IN_PROCESS = _env_bool("FUNCTIONS_IN_PROCESS", default=MAGICTOOLBOX_DEPLOYMENT == "local")

# Azure mode: events leave through Event Grid. With a topic endpoint the outbox relay publishes
# every stored event there (key credential, or DefaultAzureCredential without a key), and by
# default runs in this process, right after each commit. The local Functions host is then off:
# Event Grid pushes to the Functions instead.
EVENTGRID_TOPIC_ENDPOINT = os.environ.get("EVENTGRID_TOPIC_ENDPOINT", "")
EVENTGRID_TOPIC_KEY = os.environ.get("EVENTGRID_TOPIC_KEY", "")
RELAY_IN_PROCESS = _env_bool("RELAY_IN_PROCESS", default=bool(EVENTGRID_TOPIC_ENDPOINT))
if EVENTGRID_TOPIC_ENDPOINT and "FUNCTIONS_IN_PROCESS" not in os.environ:
    FUNCTIONS_IN_PROCESS = False
PROJECTOR_IN_PROCESS = _env_bool("PROJECTOR_IN_PROCESS", default=True)
# User webhooks (web.webhooks, handlers.webhooks): delivered by this process by default (woken by
# new events), and by the `webhooks` timer Function on Azure as a sweep. Endpoints must be https
# on a public address; WEBHOOKS_ALLOW_LOOPBACK_HTTP lets development and tests use http on
# 127.0.0.1 / ::1 (never private or link-local addresses). WEBHOOK_RETRY_SCALE shrinks the retry
# schedule (5 s … 10 h) and the 5-day disable rule, for tests.
WEBHOOKS_IN_PROCESS = _env_bool("WEBHOOKS_IN_PROCESS", default=True)
WEBHOOKS_ALLOW_LOOPBACK_HTTP = _env_bool("WEBHOOKS_ALLOW_LOOPBACK_HTTP", default=False)
WEBHOOK_RETRY_SCALE = float(os.environ.get("WEBHOOK_RETRY_SCALE") or 1.0)
WEBHOOK_SECRET_OVERLAP_HOURS = float(os.environ.get("WEBHOOK_SECRET_OVERLAP_HOURS") or 24)
# The Event Grid receiver (/eventgrid/events) accepts a delivery that carries this key (the
# X-MagicToolbox-Key header, set by the subscription's delivery attributes, or ?code=), or an
# Entra ID token for this audience (Event Grid's AAD-protected webhook delivery).
EVENTGRID_RECEIVER_KEY = os.environ.get("EVENTGRID_RECEIVER_KEY", "")
EVENTGRID_RECEIVER_AUDIENCE = os.environ.get("EVENTGRID_RECEIVER_AUDIENCE", "")
EVENTGRID_RECEIVER_TENANT_ID = os.environ.get("EVENTGRID_RECEIVER_TENANT_ID", "")
EVENTGRID_RECEIVER_JWKS_URL = os.environ.get("EVENTGRID_RECEIVER_JWKS_URL", "") or (
    f"https://login.microsoftonline.com/{EVENTGRID_RECEIVER_TENANT_ID}/discovery/v2.0/keys"
    if EVENTGRID_RECEIVER_TENANT_ID
    else ""
)

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

DEMO_ACCOUNT = _env_bool(
    "DEMO_ACCOUNT",
    default=MAGICTOOLBOX_DEPLOYMENT == "local" and DATABASE_URL.startswith("sqlite:"),
)
# Threads that run ordinary requests (web.asgi); streams and long polls do not take one.
WEB_THREADS = int(os.environ.get("WEB_THREADS", "16"))
RUN_HOST = os.environ.get("RUN_HOST", "127.0.0.1")
RUN_PORT = int(os.environ.get("RUN_PORT", "8000"))

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
# Read at request time (web.api.throttling), so tests and benchmarks can change them.
API_THROTTLE_RATES = {
    "anon": os.environ.get("API_THROTTLE_ANON", "60/min"),
    "user": os.environ.get("API_THROTTLE_USER", "1200/min"),
    "submit": os.environ.get("API_THROTTLE_SUBMIT", "120/min"),
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

# Live updates (django-eventstream): who may read which channel is web.ui.live's decision.
EVENTSTREAM_CHANNELMANAGER_CLASS = "web.live.ChannelManager"
if os.environ.get("EVENTSTREAM_REDIS"):
    from urllib.parse import unquote as _unquote, urlsplit as _urlsplit

    _redis = _urlsplit(os.environ["EVENTSTREAM_REDIS"])
    EVENTSTREAM_REDIS = {
        "host": _redis.hostname or "127.0.0.1",
        "port": _redis.port or 6379,
        "db": int((_redis.path or "/0").lstrip("/") or 0),
        "password": _unquote(_redis.password) if _redis.password else None,  # keys hold "/"
        "ssl": _redis.scheme == "rediss",  # Azure Cache for Redis: rediss://:key@host:6380/0
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
