"""The settings the code reads and the settings infra/ gives it in Azure must agree.

The code reads its settings through one class (``handlers.settings.Settings``), and nothing else
reads the environment (checked on its source, ``tests.infra.env_reads``); the Bicep's settings
are the Function app's ``appSettings`` and the Container App's ``env``. Three ways to drift, each
a test: Azure sets something the app never reads (a typo, a leftover), Azure lacks something the
app needs there, or the code reads a new setting nobody decided about for Azure. The last is how
a new setting reaches this file: set it in infra/ or list it below, with the reason.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from handlers.bindings import read_bindings
from handlers.function_app import app as function_app
from handlers.settings import Settings
from tests.infra.bicep import BicepFile, Span, infra_files, resources_of
from tests.infra.env_reads import Read, reads_in, reads_under

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

# The code each app runs: the Functions package holds these (handlers/deployment/README.md);
# the web image holds everything.
CODE = {
    "functions": ("events", "services", "projections", "handlers"),
    "web": ("events", "services", "projections", "handlers", "web"),
}
APPS = tuple(CODE)

# Settings that Azure's runtimes and SDKs read, not our code.
RUNTIME_SETTINGS = {
    "AzureWebJobsStorage__accountName": "the Functions host's own storage, reached by identity",
    "AzureWebJobsStorage__credential": "tells the Functions host to sign in with managed identity",
    "AzureWebJobsStorage__clientId": "which (user-assigned) identity the Functions host uses",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the Functions host sends its telemetry",
    "AZURE_CLIENT_ID": "azure-identity's DefaultAzureCredential: the user-assigned identity",
}

# Read by the code, deliberately not set in Azure: they only matter off Azure.
LOCAL_ONLY = {
    "DEBUG": "Django's debug pages, for development; Azure keeps them off",
    "DEMO_ACCOUNT": "the embedded default's demo user; off outside `local` on SQLite",
    "RUN_HOST": "where `magictoolbox run` listens: the image's command says 0.0.0.0",
    "RUN_PORT": "the image's command says 8000, the Container App's target port",
    "BLOB_SIGNING_KEY": "signs the local blob backend's links; Azure gives user-delegation SAS",
    "EVENTGRID_TOPIC_KEY": "key auth (the emulator); in Azure the apps publish by identity",
    "WEBHOOKS_ALLOW_LOOPBACK_HTTP": "http webhooks to 127.0.0.1, for development and tests",
    "WEBHOOK_RETRY_SCALE": "compresses the webhook retry schedule for tests; Azure keeps 1",
}

# Read by the code in Azure too, where its default is the right value.
AZURE_DEFAULT_FITS = {
    "TOOL_WORKERS": "the instance's CPU count: a Functions instance or web replica uses its cores",
    "TOOL_WORKERS_PER_OWNER": "half the workers while others wait, per process, as locally",
    "TOOL_QUEUE": "sync waiters bounded by the web's threads; more load means more replicas",
    "TOOL_WORKER_MAX_RUNS": "recycling after 200 runs suits any host",
    "TOOL_WORKER_MAX_RSS_MB": "512 MB per worker fits the instance sizes in infra/",
    "TOOL_WORKER_NICE": "10: pages stay quick while tools use every core, as locally",
    "RELAY_NICE": "10: the relay's own process yields the CPU to requests, as locally",
    "LEASE_SECONDS": "15 s: a lost instance's runs restart within ~20 s, as locally",
    "TOOL_MODULES": "Azure runs the shipped tools; extra modules come with the package",
    "EVENTSTORE_URL": "defaults to DATABASE_URL: events and read models share one database",
    "WEB_THREADS": "16 request threads per replica; more load means more replicas",
    "API_THROTTLE_ANON": "the default rates suit Azure too",
    "API_THROTTLE_USER": "the default rates suit Azure too",
    "API_THROTTLE_SUBMIT": "the default rates suit Azure too",
    "EVENTGRID_RECEIVER_AUDIENCE": "Entra ID-token delivery: the subscription sends the key",
    "EVENTGRID_RECEIVER_TENANT_ID": "Entra ID-token delivery: the subscription sends the key",
    "EVENTGRID_RECEIVER_JWKS_URL": "Entra ID-token delivery: the subscription sends the key",
    "WEBHOOKS_IN_PROCESS": "the web delivers webhooks as events arrive; the timer sweeps behind",
    "WEBHOOK_SECRET_OVERLAP_HOURS": "a rotated webhook secret keeps signing for 24 h",
    "CACHE_REDIS": "defaults to EVENTSTREAM_REDIS, the Azure Cache for Redis the web already uses",
    "MAX_BODY_BYTES": "1 MB suits every JSON route; uploads have their tools' limits",
    "LONG_POLLS_PER_USER": "10 waiting requests per user, per replica, as locally",
    "LOGIN_FAILURE_LIMIT": "5 wrong passwords before a lockout suits Azure too",
    "LOGIN_LOCKOUT_MINUTES": "15 minutes suits Azure too",
    "DB_CONNECT_TIMEOUT_SECONDS": "5 s to reach the Flexible Server in the same region",
    "DB_STATEMENT_TIMEOUT_SECONDS": "30 s: no request or function waits longer on a query",
    "DB_POOL_SIZE": "10 per pool per process: a replica's two pools stay far under the server's",
    "STORAGE_TIMEOUT_SECONDS": "20 s per Blob Storage call, retried a bounded number of times",
    "WEBHOOKS_PER_USER": "25 endpoints per user suits Azure too",
    "WEBHOOK_MESSAGE_RETENTION_DAYS": "30 days of delivery log suits Azure too",
    "AUDIT_KEY": "derived from SECRET_KEY, itself a Key Vault reference: never in the database",
    "HSTS_SECONDS": "one year of HSTS behind the ingress that ends HTTPS",
}

# What each app cannot run without in Azure (the Functions also need every %SETTING% their
# bindings name: added from function_app.py below).
REQUIRED_IN_AZURE = {
    "web": {
        "SECRET_KEY",  # web/settings.py refuses to start without one outside `local`
        "DATABASE_URL",
        "BLOB_STORAGE",
        "MAGICTOOLBOX_DEPLOYMENT",
        "ALLOWED_HOSTS",
        "EVENTGRID_TOPIC_ENDPOINT",
        "EVENTGRID_RECEIVER_KEY",
        "EVENTSTREAM_REDIS",
        "FUNCTIONS_IN_PROCESS",
        "RELAY_IN_PROCESS",
        "PROJECTOR_IN_PROCESS",
        "AZURE_CLIENT_ID",
    },
    "functions": {
        "DATABASE_URL",
        "BLOB_STORAGE",
        "MAGICTOOLBOX_DEPLOYMENT",
        "EVENTGRID_TOPIC_ENDPOINT",
        "AZURE_CLIENT_ID",
        "AzureWebJobsStorage__accountName",
    },
}

# Values that must come from Key Vault wherever they are set, never as plain text.
SECRETS = {
    "SECRET_KEY",
    "DATABASE_URL",
    "EVENTSTORE_URL",
    "EVENTGRID_RECEIVER_KEY",
    "EVENTGRID_TOPIC_KEY",
    "EVENTSTREAM_REDIS",
    "BLOB_SIGNING_KEY",
}

# The web in Azure: tool work goes to the Functions through Event Grid; the web relays its
# outbox after each commit and keeps its read models (and live updates) current itself.
WEB_SWITCHES = {
    "FUNCTIONS_IN_PROCESS": "false",
    "RELAY_IN_PROCESS": "true",
    "PROJECTOR_IN_PROCESS": "true",
}


# -- what the code reads -------------------------------------------------------------------------


@cache
def environment_reads(app: str) -> tuple[Read, ...]:
    """Reads of the environment in the app's code, found in its source: there should be none."""
    return tuple(reads_under(ROOT, CODE[app]))


@cache
def bindings() -> frozenset[str]:
    """The app settings the Functions' bindings name (``%NAME%``)."""
    _, timers = read_bindings(function_app)
    return frozenset(t.schedule.strip("%") for t in timers if t.schedule.startswith("%"))


def read_by(app: str) -> frozenset[str]:
    """Both apps read the one Settings class (the web runs the timers too, locally)."""
    return frozenset(Settings.model_fields)


# -- what the Bicep sets -------------------------------------------------------------------------


@cache
def bicep() -> tuple[BicepFile, ...]:
    return tuple(infra_files(INFRA))


def _entries(app: str) -> list[dict[str, Span]]:
    type_, key = {
        "functions": ("Microsoft.Web/sites", "appSettings"),
        "web": ("Microsoft.App/containerApps", "env"),
    }[app]
    found = resources_of(list(bicep()), type_)
    assert len(found) == 1, f"expected one {type_} in infra/, found {len(found)}"
    file, resource = found[0]
    assert resource.body is not None
    settings = resource.body.find(key)
    assert settings is not None, (
        f"{file.path.name}: the {type_} has no literal `{key}: [ … ]` list for this test to read"
    )
    return [item.props() for item in settings.items()]


@cache
def set_in_azure(app: str) -> dict[str, dict[str, Span]]:
    """name → the entry's properties (value / secretRef), for one app."""
    found: dict[str, dict[str, Span]] = {}
    for entry in _entries(app):
        name = entry["name"].literal()
        assert name, f"a setting whose name is not a plain string: {entry['name']!r}"
        found[name] = entry
    return found


def set_anywhere() -> set[str]:
    return {name for app in APPS for name in set_in_azure(app)}


def required(app: str) -> set[str]:
    return REQUIRED_IN_AZURE[app] | (bindings() if app == "functions" else set())


# -- the scanner itself --------------------------------------------------------------------------


def test_the_scanner_finds_every_kind_of_read() -> None:
    source = """
import os
from os import environ as ENV, getenv

def _env_bool(name, default):
    return os.environ.get(name) == "1"

A = os.environ.get("A")
B = os.environ["B"]
C = os.getenv("C", "")
D = "D" in os.environ
E = _env_bool("E", default=False)
F = getenv("F")
G = ENV.get("G")
os.environ.setdefault("NOT_A_READ", "x")

def from_environment(env=None):
    env = dict(os.environ if env is None else env)
    return env.get("H"), env["I"]

def computed(name):
    return os.environ.get(name)
"""
    reads = reads_in(source, Path("example.py"))
    assert {r.name for r in reads if r.name} == set("ABCDEFGHI")
    assert [(r.name, r.function) for r in reads if r.name is None] == [(None, "computed")]


def test_only_the_settings_class_reads_the_environment() -> None:
    reads = [str(r) for r in environment_reads("web")]
    assert not reads, (
        "read settings through handlers.settings.Settings (a typed field, in the README's "
        "table), not from the environment: " + "; ".join(reads)
    )


def test_every_binding_setting_of_the_function_app_is_a_setting() -> None:
    assert bindings() and bindings() <= set(Settings.model_fields)


# -- the drift checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS)
def test_azure_sets_only_what_the_app_reads(app: str) -> None:
    unread = set(set_in_azure(app)) - read_by(app) - set(RUNTIME_SETTINGS)
    assert not unread, (
        f"infra/ gives the {app} app settings its code never reads: {sorted(unread)} "
        f"(a typo? a setting the code dropped?)"
    )


@pytest.mark.parametrize("app", APPS)
def test_azure_sets_what_the_app_needs(app: str) -> None:
    missing = required(app) - set(set_in_azure(app))
    assert not missing, f"infra/ does not give the {app} app {sorted(missing)}"


def test_every_setting_the_code_reads_has_an_azure_decision() -> None:
    undecided = read_by("web") - set_anywhere() - set(LOCAL_ONLY) - set(AZURE_DEFAULT_FITS)
    assert not undecided, (
        f"the code reads {sorted(undecided)}, which infra/ neither sets nor lists: set it in "
        "infra/ (modules/web.bicep env, modules/functions.bicep appSettings), or add it to "
        "LOCAL_ONLY / AZURE_DEFAULT_FITS in tests/infra/test_app_settings.py with the reason"
    )


def test_the_allow_lists_are_current() -> None:
    listed = {**LOCAL_ONLY, **AZURE_DEFAULT_FITS}
    not_read = set(listed) - read_by("web")
    assert not not_read, f"listed but no longer read by the code: {sorted(not_read)}"
    contradicted = set(listed) & set_anywhere()
    assert not contradicted, f"listed as not set in Azure, yet infra/ sets {sorted(contradicted)}"
    unused_runtime = set(RUNTIME_SETTINGS) - set_anywhere()
    assert not unused_runtime, f"RUNTIME_SETTINGS infra/ no longer sets: {sorted(unused_runtime)}"


@pytest.mark.parametrize("app", APPS)
def test_no_setting_is_set_twice(app: str) -> None:
    names = [entry["name"].literal() for entry in _entries(app)]
    assert len(names) == len(set(names)), f"{app}: {sorted(n for n in names if names.count(n) > 1)}"


@pytest.mark.parametrize("app", APPS)
def test_secrets_come_from_key_vault(app: str) -> None:
    for name, entry in set_in_azure(app).items():
        if name not in SECRETS:
            continue
        if app == "web":
            # A Container App secret that Container Apps reads from Key Vault by identity.
            assert "secretRef" in entry and "value" not in entry, f"web: {name} is not a secretRef"
            assert entry["secretRef"].literal() in key_vault_secrets_of_web(), name
        else:
            value = entry["value"].text
            assert value.startswith("'@Microsoft.KeyVault(SecretUri="), (
                f"functions: {name} is not a Key Vault reference: {value}"
            )


def key_vault_secrets_of_web() -> set[str]:
    ((_, resource),) = resources_of(list(bicep()), "Microsoft.App/containerApps")
    assert resource.body is not None
    secrets = resource.body.find("secrets")
    assert secrets is not None, "the Container App has no secrets"
    names = set()
    for item in secrets.items():
        props = item.props()
        assert "keyVaultUrl" in props and "identity" in props, f"not from Key Vault: {item!r}"
        assert "value" not in props, f"a secret's value in the template: {item!r}"
        names.add(props["name"].literal())
    return names


def test_the_web_hands_tool_work_to_the_functions() -> None:
    web = set_in_azure("web")
    values = {name: web[name]["value"].literal() for name in WEB_SWITCHES if name in web}
    assert values == WEB_SWITCHES
