"""Django's settings, made from the typed settings (``handlers.settings``) read once here.

Everything MagicToolbox itself reads is on ``MAGICTOOLBOX`` (a ``Settings``); what follows is
what Django and its apps need, derived from it. An invalid value stops start-up with one line
naming the variable.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote, urlsplit

import dj_database_url
from csp.constants import NONE, SELF

from events.connections import Timeouts, split_url
from handlers.settings import VAR_DIR, Settings, load_or_exit

# The web refuses to start without a secret key outside the local deployment.
MAGICTOOLBOX = load_or_exit(check=Settings.secret_key)
BASE_DIR = VAR_DIR.parent
VAR_DIR.mkdir(exist_ok=True)


def _django_database(url: str, limits: Timeouts, pool_size: int) -> dict:
    """dj-database-url's config; on PostgreSQL our ``schema`` parameter becomes a search_path,
    as the event store and the read models read it (``events.connections``), and Django's
    connections wait as long as theirs: to connect, per statement, for SQLite's lock. On
    PostgreSQL Django borrows from a pool of ``pool_size`` (Django's own, psycopg_pool's) rather
    than connecting for each request: the process's connections stay bounded (events.pools)."""
    if url.startswith("sqlite:"):
        config = dj_database_url.parse(url)
        config.setdefault("OPTIONS", {})["timeout"] = limits.statement
        return config
    libpq_url, schema = split_url(url)
    config = dj_database_url.parse(libpq_url)
    config.setdefault("OPTIONS", {}).update(limits.postgres(f"-c search_path={schema}"))
    config["OPTIONS"]["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": limits.connect}
    return config


# Django's connections: one per request thread, the edge's two authentication threads, and two
# to spare (a thread that finds them all in use waits, up to the connect timeout).
DJANGO_POOL_SIZE = MAGICTOOLBOX.WEB_THREADS + 4


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
    # Browsers reach us over HTTPS only there: cookies never travel in clear, a plain-HTTP
    # request is sent to HTTPS, and browsers remember to use HTTPS (HSTS, on this host and the
    # names under it). The probes' /healthz comes straight to the container, in plain HTTP and
    # without the proxy's header: redirected, any answer would pass (3xx counts as healthy).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = MAGICTOOLBOX.HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Not `preload`: asking browsers to hard-code HTTPS for a whole registrable domain is its owner's
# decision (made at hstspreload.org, and slow to undo), not one a deployment of this app can take
# for whatever domain it is served under. So `check --deploy`'s reminder (W021) is silenced.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
# What a page may load and run (django-csp): only this origin's files, no inline script or style
# (the UI's are static files, its data in json_script blocks), `data:` images (Bootstrap's and
# Swagger UI's icons), no plugins, no framing, forms post here only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}
CSRF_TRUSTED_ORIGINS = list(MAGICTOOLBOX.CSRF_TRUSTED_ORIGINS)
DATABASES = {
    "default": _django_database(
        MAGICTOOLBOX.DATABASE_URL,
        Timeouts(
            connect=MAGICTOOLBOX.DB_CONNECT_TIMEOUT_SECONDS,
            statement=MAGICTOOLBOX.DB_STATEMENT_TIMEOUT_SECONDS,
        ),
        DJANGO_POOL_SIZE,
    )
}

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
    "axes",  # login lockouts (django-axes); its models hold the failed attempts
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY, below
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
    "web.ui.lockout.LockoutPageMiddleware",  # ...rendered once (web.ui.lockout)
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

# Login lockouts (django-axes): LOGIN_FAILURE_LIMIT wrong passwords for one account from one
# address lock that pair out for LOGIN_LOCKOUT_MINUTES, on the UI's and the admin's login alike
# (429, web.ui.lockout). The attempts are rows in the database (axes' own handler), so every
# process and every restart sees them, and an operator sees and clears them in the admin.
AUTHENTICATION_BACKENDS = [
    "web.ui.lockout.LockoutBackend",  # first: a locked-out pair never reaches the password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = MAGICTOOLBOX.LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=MAGICTOOLBOX.LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Attempts while locked out are refused before any password is checked and are not recorded: axes
# would append each one's form data to the pair's row (an attacker's flood would grow one row
# without end) and restart the cool-off; it counts from the failure that locked the pair.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True  # a right password forgets the earlier typos
AXES_DISABLE_ACCESS_LOG = True  # no row per successful login: the table would only grow
# The client's address as the rate limits see it (TRUSTED_PROXIES), not django-ipware's guess.
AXES_CLIENT_IP_CALLABLE = "web.api.throttling.client_address"
AXES_IPWARE_PROXY_COUNT = MAGICTOOLBOX.TRUSTED_PROXIES  # the same, should ipware be installed
AXES_LOCKOUT_CALLABLE = "web.ui.lockout.locked_out"

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
    # X-Forwarded-For entries added by proxies we trust; 0: the peer's address, header ignored.
    "NUM_PROXIES": MAGICTOOLBOX.TRUSTED_PROXIES,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "web.api.parsers.JSONParser",
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
    # Links from what makes a resource to what uses it; Location and Retry-After headers.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "web.api.schema.postprocess",
    ],
}

# Rate limits count in a cache every process shares: Redis where there is one (CACHE_REDIS, else
# the live updates' EVENTSTREAM_REDIS; Azure has it), this process's memory on the embedded
# default, which serves from one process. Short socket timeouts: with Redis gone a request waits
# half a second rather than a TCP timeout, and the throttles let it through with a logged warning
# (web.api.throttling) rather than answer 500.
_cache_redis = MAGICTOOLBOX.CACHE_REDIS or MAGICTOOLBOX.EVENTSTREAM_REDIS
if _cache_redis:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_redis,
            "KEY_PREFIX": "magictoolbox",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
