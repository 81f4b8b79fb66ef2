"""Settings: read once from the environment, typed; a bad value stops start-up with one line.

Every typed variable is tried with a value it must refuse, through the real command line (a
process that exits non-zero with that one line, no traceback); the README's table of settings is
the one the class generates.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.settings import Settings, SettingsError, markdown_table
from tests.web.support import run_cli

ROOT = Path(__file__).resolve().parents[2]

# A value each typed variable must refuse, and the words its line must contain.
INVALID = {
    "MAGICTOOLBOX_DEPLOYMENT": ("Prod Ction!", "expected text matching"),
    "DEBUG": ("maybe", "expected true/false/1/0/yes/no"),
    "DATABASE_URL": ("mysql://db/app", "expected sqlite:///path or postgresql://"),
    "EVENTSTORE_URL": ("postgresql://db/app?schema=Drop;", "expected ?schema= to be a lower-case"),
    "BEHIND_HTTPS_PROXY": ("sometimes", "expected true/false/1/0/yes/no"),
    "FUNCTIONS_IN_PROCESS": ("on", "expected true/false/1/0/yes/no"),
    "PROJECTOR_IN_PROCESS": ("2", "expected true/false/1/0/yes/no"),
    "RELAY_IN_PROCESS": ("y", "expected true/false/1/0/yes/no"),
    "WEBHOOKS_IN_PROCESS": ("enabled", "expected true/false/1/0/yes/no"),
    "WEB_THREADS": ("abc", "expected an integer"),
    "RUN_PORT": ("70000", "expected a number of at most 65535"),
    "DEMO_ACCOUNT": ("please", "expected true/false/1/0/yes/no"),
    "API_THROTTLE_ANON": ("lots", "expected a rate like 60/min"),
    "API_THROTTLE_USER": ("100", "expected a rate like 60/min"),
    "API_THROTTLE_SUBMIT": ("5/fortnight", "expected a rate like 60/min"),
    "WEBHOOKS_ALLOW_LOOPBACK_HTTP": ("of course", "expected true/false/1/0/yes/no"),
    "WEBHOOK_RETRY_SCALE": ("0", "expected a number above 0"),
    "WEBHOOK_SECRET_OVERLAP_HOURS": ("a day", "expected a number"),
    "RETRY_BACKOFF_SECONDS": ("-5", "expected a number above 0"),
    "TOOL_WORKERS": ("0", "expected a number of at least 1"),
    "TOOL_WORKERS_PER_OWNER": ("half", "expected an integer"),
    "TOOL_QUEUE": ("-1", "expected a number of at least 0"),
    "TOOL_WORKER_MAX_RUNS": ("many", "expected an integer"),
    "TOOL_WORKER_MAX_RSS_MB": ("8", "expected a number of at least 16"),
    "LEASE_SECONDS": ("0", "expected a number above 0"),
    "TOOL_WORKER_NICE": ("20", "expected a number of at most 19"),
    "RELAY_NICE": ("-1", "expected a number of at least 0"),
    "DB_POOL_SIZE": ("0", "expected a number of at least 1"),
    "SWEEP_SCHEDULE": ("*/15 * * * *", "expected an NCRONTAB schedule"),
    "RETENTION_SCHEDULE": ("daily", "expected an NCRONTAB schedule"),
    "RELAY_SCHEDULE": ("* * * * * * * *", "expected an NCRONTAB schedule"),
    "WEBHOOKS_SCHEDULE": ("61 * * * * *", "expected an NCRONTAB schedule"),
    "TRUSTED_PROXIES": ("11", "expected a number of at most 10"),
    "MAX_BODY_BYTES": ("100", "expected a number of at least 1024"),
    "LONG_POLLS_PER_USER": ("0", "expected a number of at least 1"),
    "LOGIN_FAILURE_LIMIT": ("few", "expected an integer"),
    "LOGIN_LOCKOUT_MINUTES": ("0", "expected a number above 0"),
    "DB_CONNECT_TIMEOUT_SECONDS": ("0", "expected a number of at least 1"),
    "DB_STATEMENT_TIMEOUT_SECONDS": ("never", "expected a number"),
    "STORAGE_TIMEOUT_SECONDS": ("-1", "expected a number above 0"),
    "WEBHOOKS_PER_USER": ("0", "expected a number of at least 1"),
    "WEBHOOK_MESSAGE_RETENTION_DAYS": ("0", "expected a number above 0"),
    "HSTS_SECONDS": ("-1", "expected a number of at least 0"),
}


def typed(name: str) -> bool:
    """A variable that some text is not a value of (any text is a list of words)."""
    field = Settings.model_fields[name]
    if field.annotation == tuple[str, ...]:
        return False
    return field.annotation is not str or bool(field.metadata)


def test_every_typed_variable_has_a_value_to_refuse() -> None:
    assert {name for name in Settings.model_fields if typed(name)} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_an_invalid_value_stops_start_up_with_one_line(name: str) -> None:
    value, expected = INVALID[name]

    refused = run_cli("check", **{name: value})

    assert refused.returncode == 2, refused.stdout
    assert "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"{name}: {expected}") and line.endswith(f"got {value!r}"), line


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"WEB_THREADS": "abc", "DEBUG": "maybe", "RUN_HOST": "example"})
    assert str(refused.value).splitlines() == [
        "DEBUG: expected true/false/1/0/yes/no, got 'maybe'",
        "WEB_THREADS: expected an integer, got 'abc'",
    ]


def test_booleans_take_only_the_six_spellings() -> None:
    for word, meaning in [("true", True), ("1", True), ("YES", True), ("False", False)]:
        assert Settings.from_env({"DEBUG": word}).DEBUG is meaning
    assert Settings.from_env({"DEBUG": "no"}).DEBUG is False
    assert Settings.from_env({"DEBUG": "0"}).DEBUG is False
    with pytest.raises(SettingsError, match="DEBUG: expected true/false/1/0/yes/no"):
        Settings.from_env({"DEBUG": "on"})


def test_an_empty_value_means_unset_and_derived_defaults_follow_the_others() -> None:
    default = Settings.from_env({"WEB_THREADS": "", "EVENTSTORE_URL": ""})
    assert default.WEB_THREADS == 16
    assert default.eventstore_url == default.DATABASE_URL
    assert default.functions_in_process and not default.relay_in_process
    azure = Settings.from_env(
        {"MAGICTOOLBOX_DEPLOYMENT": "prod", "EVENTGRID_TOPIC_ENDPOINT": "https://t/api/events"}
    )
    assert (azure.functions_in_process, azure.relay_in_process, azure.demo_account) == (
        False,
        True,
        False,
    )
    assert azure.source == "/magictoolbox/prod"
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: required outside the local"):
        azure.secret_key()


def test_the_readme_lists_every_setting_as_the_class_does() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- settings -->\n(.*?)\n<!-- /settings -->", readme, re.S)
    assert found, "README.md has no <!-- settings --> table"
    assert found.group(1).strip() == markdown_table(), (
        "the README's settings table is stale: regenerate it with `python -m handlers.settings`"
    )


def test_a_refused_url_is_shown_without_its_password() -> None:
    refused = run_cli("check", DATABASE_URL="postgresql://app:hunter2@db/app?schema=Not-This")
    assert refused.returncode == 2
    assert "hunter2" not in refused.stderr + refused.stdout
    assert refused.stderr.strip() == (
        "DATABASE_URL: expected ?schema= to be a lower-case SQL name, "
        "got 'postgresql://app:***@db/app?schema=Not-This'"
    )
