"""Settings: every value MagicToolbox reads from the environment, typed and read once.

The web (Django's settings are made from it) and the Functions app share this class; an app
setting in Azure is an environment variable. A value that does not parse stops start-up with one
line per variable naming it and what it expects (``load_or_exit``). ``python -m handlers.settings``
prints the README's table of them.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from events.connections import redacted, split_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"  # local data: the SQLite file, blobs, the local secret key
LOCAL = "local"
TRUE, FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


class SettingsError(ValueError):
    """One or more settings cannot be used; the message has one line per variable."""


def _flag(value: object) -> object:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE | FALSE:
            return word in TRUE
        raise ValueError("expected true/false/1/0/yes/no")
    return value


def _words(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def _rate(value: str) -> str:
    if not _RATE.match(value):
        raise ValueError("expected a rate like 60/min (per s, min, hour or day)")
    return value


def _database_url(value: str) -> str:
    if value.startswith(("postgres://", "postgresql://")):
        try:
            split_url(value)
        except ValueError:
            raise ValueError("expected ?schema= to be a lower-case SQL name") from None
    elif not value.startswith("sqlite:"):
        raise ValueError("expected sqlite:///path or postgresql://… (with an optional ?schema=)")
    return value


def _schedule(value: str) -> str:
    if len(value.split()) != 6 or not croniter.is_valid(value, second_at_beginning=True):
        raise ValueError("expected an NCRONTAB schedule of six fields, seconds first")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
MaybeFlag = Annotated[bool | None, BeforeValidator(_flag)]  # None: decided by other settings
Words = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_words)]
Rate = Annotated[str, AfterValidator(_rate)]
Schedule = Annotated[str, AfterValidator(_schedule)]
DatabaseURL = Annotated[str, AfterValidator(_database_url)]


class Settings(BaseSettings):
    """Each field is the environment variable of its name; an empty value counts as unset."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True
    )

    MAGICTOOLBOX_DEPLOYMENT: str = Field(
        LOCAL,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="the deployment's name; CloudEvents come from `/magictoolbox/<name>`",
    )
    DEBUG: Flag = Field(False, description="Django's debug pages (never in production)")
    SECRET_KEY: str = Field(
        "", description="Django's key; `local` makes one in `var/secret-key`, others must set it"
    )
    ALLOWED_HOSTS: Words = Field(
        ("localhost", "127.0.0.1", "[::1]"), description="host names served (comma-separated)"
    )
    CSRF_TRUSTED_ORIGINS: Words = Field((), description="origins trusted for forms (comma-sep.)")
    BEHIND_HTTPS_PROXY: Flag = Field(
        False, description="trust `X-Forwarded-Proto` from a proxy that ends HTTPS"
    )
    DATABASE_URL: DatabaseURL = Field(
        f"sqlite:///{VAR_DIR / 'magictoolbox.sqlite3'}",
        description="Django's tables and the read models (`sqlite:///…` or `postgresql://…`)",
    )
    EVENTSTORE_URL: DatabaseURL | None = Field(
        None, description="the event store; `DATABASE_URL` when unset (`?schema=NAME` on PG)"
    )
    BLOB_STORAGE: str = Field(
        str(VAR_DIR / "blobs"),
        description="a folder, or an Azure connection string or account URL",
    )
    BLOB_SIGNING_KEY: str = Field(
        "", description="signs the local blob store's download links; `SECRET_KEY` when unset"
    )
    FUNCTIONS_IN_PROCESS: MaybeFlag = Field(
        None, description="run the Functions host in the web process (`local` without a topic)"
    )
    PROJECTOR_IN_PROCESS: Flag = Field(True, description="run the projector in the web process")
    RELAY_IN_PROCESS: MaybeFlag = Field(
        None, description="the web runs the outbox relay beside it (on with a topic)"
    )
    RELAY_NICE: int = Field(
        10, ge=0, le=19, description="nice of that relay's own process (0: the web's priority)"
    )
    WEBHOOKS_IN_PROCESS: Flag = Field(True, description="deliver user webhooks from the web")
    WEB_THREADS: int = Field(16, ge=1, description="threads serving ordinary requests")
    RUN_HOST: str = Field("127.0.0.1", description="where `magictoolbox run` listens")
    RUN_PORT: int = Field(8000, ge=1, le=65535, description="the port it listens on")
    DEMO_ACCOUNT: MaybeFlag = Field(
        None, description="a first `run` makes a `demo` user (`local` on SQLite)"
    )
    EVENTSTREAM_REDIS: str = Field(
        "", description="`redis://…` shares live updates between processes"
    )
    API_THROTTLE_ANON: Rate = Field("60/min", description="requests per client address")
    API_THROTTLE_USER: Rate = Field("1200/min", description="requests per user")
    API_THROTTLE_SUBMIT: Rate = Field("120/min", description="submits per user")
    CACHE_REDIS: str = Field(
        "",
        description="`redis://…` shares rate limits and login lockouts between processes "
        "(`EVENTSTREAM_REDIS` when unset; else this process's memory)",
    )
    TRUSTED_PROXIES: int = Field(
        0, ge=0, le=10, description="proxies in front whose `X-Forwarded-For` entry is trusted"
    )
    MAX_BODY_BYTES: int = Field(
        1_048_576, ge=1024, description="body limit of every route but uploads, before reading"
    )
    LONG_POLLS_PER_USER: int = Field(
        10, ge=1, description="a user's concurrent long polls and live streams before a 429"
    )
    LOGIN_FAILURE_LIMIT: int = Field(
        5, ge=1, description="wrong passwords for one account and address before a lockout"
    )
    LOGIN_LOCKOUT_MINUTES: float = Field(
        15.0, gt=0, description="how long a locked-out login stays locked"
    )
    DB_CONNECT_TIMEOUT_SECONDS: int = Field(
        5, ge=1, description="PostgreSQL connect timeout (libpq `connect_timeout`)"
    )
    DB_STATEMENT_TIMEOUT_SECONDS: float = Field(
        30.0, gt=0, description="PostgreSQL `statement_timeout` and SQLite's busy wait"
    )
    DB_POOL_SIZE: int = Field(
        10,
        ge=1,
        description="PostgreSQL connections per pool per process (the store's, the read models')",
    )
    STORAGE_TIMEOUT_SECONDS: float = Field(
        20.0, gt=0, description="connect and read timeout of each Azure Blob Storage call"
    )
    WEBHOOKS_PER_USER: int = Field(25, ge=1, description="webhook endpoints one user may have")
    WEBHOOK_MESSAGE_RETENTION_DAYS: float = Field(
        30.0, gt=0, description="days a webhook message and its delivery log are kept"
    )
    AUDIT_KEY: str = Field(
        "",
        description="the audit anchors' HMAC key (never stored in the database); "
        "derived from `SECRET_KEY` when unset",
    )
    HSTS_SECONDS: int = Field(
        31_536_000, ge=0, description="`Strict-Transport-Security` max-age behind the HTTPS proxy"
    )
    EVENTGRID_TOPIC_ENDPOINT: str = Field(
        "", description="the Event Grid topic the relay publishes to (none: local delivery)"
    )
    EVENTGRID_TOPIC_KEY: str = Field(
        "", description="its access key; without one, DefaultAzureCredential"
    )
    EVENTGRID_RECEIVER_KEY: str = Field(
        "", description="the key Event Grid's pushes to `/eventgrid/events` carry"
    )
    EVENTGRID_RECEIVER_AUDIENCE: str = Field(
        "", description="or: the Entra ID audience of their tokens"
    )
    EVENTGRID_RECEIVER_TENANT_ID: str = Field("", description="the tokens' tenant")
    EVENTGRID_RECEIVER_JWKS_URL: str = Field(
        "", description="the tokens' signing keys; the tenant's when unset"
    )
    WEBHOOKS_ALLOW_LOOPBACK_HTTP: Flag = Field(
        False, description="let webhooks go to http on 127.0.0.1 (development, tests)"
    )
    WEBHOOK_RETRY_SCALE: float = Field(
        1.0, gt=0, description="times the webhook retry schedule (tests shrink it)"
    )
    WEBHOOK_SECRET_OVERLAP_HOURS: float = Field(
        24.0, ge=0, description="hours a rotated webhook secret keeps signing"
    )
    TOOL_MODULES: Words = Field(
        (), description="extra modules whose tools are registered (comma-separated)"
    )
    TOOL_WORKERS: int | None = Field(
        None, ge=1, description="tool worker processes per process that runs tools (CPU count)"
    )
    TOOL_WORKERS_PER_OWNER: int | None = Field(
        None, ge=1, description="runs one owner may hold while others wait (half the workers)"
    )
    TOOL_QUEUE: int | None = Field(
        None,
        ge=0,
        description="sync requests waiting for a worker before a 503 (web threads - workers)",
    )
    TOOL_WORKER_MAX_RUNS: int = Field(200, ge=1, description="runs before a worker is replaced")
    TOOL_WORKER_MAX_RSS_MB: int = Field(
        512, ge=16, description="resident MB past which a worker is replaced after its run"
    )
    TOOL_WORKER_NICE: int = Field(
        10, ge=0, le=19, description="nice of tool workers (0: sync runs first, pages slower)"
    )
    LEASE_SECONDS: float = Field(
        15.0, gt=0, description="a worker's lease: a run whose process is silent this long is lost"
    )
    RETRY_BACKOFF_SECONDS: float = Field(
        30.0, gt=0, description="the wait before a failed execution's next attempt, doubling"
    )
    SWEEP_SCHEDULE: Schedule = Field(
        "*/5 * * * * *",
        description="NCRONTAB: fail runs of lost workers, time out dead attempts, re-queue",
    )
    RETENTION_SCHEDULE: Schedule = Field(
        "0 7 * * * *", description="NCRONTAB: remove files past retention"
    )
    RELAY_SCHEDULE: Schedule = Field(
        "*/10 * * * * *", description="NCRONTAB: the relay's sweep (with a topic)"
    )
    WEBHOOKS_SCHEDULE: Schedule = Field(
        "*/10 * * * * *", description="NCRONTAB: user webhook deliveries' sweep"
    )

    # -- reading ---------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in the process's environment (or in ``environ``), checked."""
        if environ is not None:
            return given({name: value for name, value in environ.items() if value != ""})
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(_lines(exc)) from None

    def but(self, **changes: Any) -> Settings:
        """These settings with some values changed, checked again (no environment read)."""
        return given({**self.model_dump(), **changes})

    # -- what the values mean together -----------------------------------------------------------

    @property
    def local(self) -> bool:
        return self.MAGICTOOLBOX_DEPLOYMENT == LOCAL

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of this deployment's events."""
        return f"/magictoolbox/{self.MAGICTOOLBOX_DEPLOYMENT}"

    @property
    def eventstore_url(self) -> str:
        return self.EVENTSTORE_URL or self.DATABASE_URL

    @property
    def functions_in_process(self) -> bool:
        default = self.local and not self.EVENTGRID_TOPIC_ENDPOINT
        return default if self.FUNCTIONS_IN_PROCESS is None else self.FUNCTIONS_IN_PROCESS

    @property
    def relay_in_process(self) -> bool:
        default = bool(self.EVENTGRID_TOPIC_ENDPOINT)
        return default if self.RELAY_IN_PROCESS is None else self.RELAY_IN_PROCESS

    @property
    def demo_account(self) -> bool:
        default = self.local and self.DATABASE_URL.startswith("sqlite:")
        return default if self.DEMO_ACCOUNT is None else self.DEMO_ACCOUNT

    @property
    def receiver_jwks_url(self) -> str:
        if self.EVENTGRID_RECEIVER_JWKS_URL or not self.EVENTGRID_RECEIVER_TENANT_ID:
            return self.EVENTGRID_RECEIVER_JWKS_URL
        tenant = self.EVENTGRID_RECEIVER_TENANT_ID
        return f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"

    def throttle_rate(self, scope: str) -> str:
        """The rate of one API throttle scope (``anon``, ``user``, ``submit``)."""
        return getattr(self, f"API_THROTTLE_{scope.upper()}")

    @property
    def schedules(self) -> dict[str, str]:
        """The app settings the Functions' timer bindings name (``%SWEEP_SCHEDULE%``, …)."""
        return {
            "SWEEP_SCHEDULE": self.SWEEP_SCHEDULE,
            "RETENTION_SCHEDULE": self.RETENTION_SCHEDULE,
            "RELAY_SCHEDULE": self.RELAY_SCHEDULE,
            "WEBHOOKS_SCHEDULE": self.WEBHOOKS_SCHEDULE,
        }

    def secret_key(self) -> str:
        """``SECRET_KEY``; the local deployment's own random one (made once, kept in ``var/``)
        when unset; any other deployment must set it."""
        if self.SECRET_KEY:
            return self.SECRET_KEY
        if not self.local:
            raise SettingsError("SECRET_KEY: required outside the local deployment")
        return _local_secret_key(VAR_DIR / "secret-key")

    def blob_signing_key(self) -> str:
        """What signs the local blob store's links (Azure's are SAS URLs, signed by Azure)."""
        return self.BLOB_SIGNING_KEY or (self.secret_key() if self.local else self.SECRET_KEY)


class _Given(Settings):
    """Settings from given values alone: the environment is not read."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: Any, **others: Any
    ) -> tuple[Any, ...]:
        return (init_settings,)


def given(values: Mapping[str, Any]) -> Settings:
    """Settings from these values (the rest default), or one line per value that is wrong."""
    known = {name: value for name, value in values.items() if name in Settings.model_fields}
    try:
        return _Given(**known)
    except ValidationError as exc:
        raise SettingsError(_lines(exc)) from None


def load_or_exit(check: Callable[[Settings], object] | None = None) -> Settings:
    """The settings from the environment, and ``check`` of them passed (e.g. ``secret_key``,
    which only the web needs); else their one-line errors on stderr and exit status 2."""
    try:
        loaded = Settings.from_env()
        if check is not None:
            check(loaded)
        return loaded
    except SettingsError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None


def _lines(exc: ValidationError) -> str:
    return "\n".join(_line(error) for error in exc.errors())


# pydantic's error types → what the variable expects (from the error's context).
_EXPECTED: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_parsing": lambda ctx: "expected an integer",
    "int_type": lambda ctx: "expected an integer",
    "float_parsing": lambda ctx: "expected a number",
    "float_type": lambda ctx: "expected a number",
    "greater_than": lambda ctx: f"expected a number above {ctx['gt']}",
    "greater_than_equal": lambda ctx: f"expected a number of at least {ctx['ge']}",
    "less_than_equal": lambda ctx: f"expected a number of at most {ctx['le']}",
    "string_pattern_mismatch": lambda ctx: f"expected text matching {ctx['pattern']}",
    "value_error": lambda ctx: str(ctx["error"]),  # our validators say what they expect
}


def _line(error: Any) -> str:
    """A pydantic error as ``NAME: expected …, got '…'``."""
    name = ".".join(str(p) for p in error["loc"]) or "settings"
    expected = _EXPECTED.get(error["type"])
    shown = expected(error.get("ctx", {})) if expected else str(error["msg"]).lower()
    value = error["input"]
    if isinstance(value, str) and "://" in value:
        value = redacted(value)  # a URL's password never reaches a log
    return f"{name}: {shown}, got {value!r}"


def _local_secret_key(path: Path) -> str:
    """The local deployment's own random key, made once and kept in ``path`` (mode 0600)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


def markdown_table() -> str:
    """The README's table of settings: name, default, meaning."""
    lines = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, tuple):
            default = ",".join(default)
        if isinstance(default, str):  # the checkout's own path differs from machine to machine
            default = default.replace(str(PROJECT_ROOT), "<project>")
        shown = "(unset)" if default in ("", None, ()) else f"`{default}`"
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        lines.append(f"| `{name}` | {shown} | {field.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
