"""Deployment hardening as an operator and a browser meet it: `magictoolbox check --deploy` finds
nothing with Azure's settings (and still finds what is missing without the HTTPS proxy); behind
the proxy a real server sends plain HTTP to HTTPS, answers the probes' plain /healthz, marks its
cookies Secure and sends HSTS; every page carries a CSP that allows no inline code, and no
template holds any."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import web.ui
from tests.e2e.contained import Server, create_users, server_env
from tests.web.support import run_cli
from web.core.management.commands.run import redact_query

pytestmark = pytest.mark.timeout(120)

TEMPLATES = Path(web.ui.__file__).parent / "templates"
HOST = "example.azurecontainerapps.io"


def azure_like(root: Path, **changes: str) -> dict[str, str]:
    """What infra/modules/web.bicep gives the web container, on a local SQLite file."""
    return {
        "MAGICTOOLBOX_DEPLOYMENT": "prod",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "BEHIND_HTTPS_PROXY": "true",
        "ALLOWED_HOSTS": HOST,
        "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
        "DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{root / 'app.sqlite3'}",
        "BLOB_STORAGE": str(root / "blobs"),
        **changes,
    }


def test_check_deploy_finds_nothing_with_azures_settings(tmp_path: Path) -> None:
    checked = run_cli("check", "--deploy", **azure_like(tmp_path))
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout, checked.stdout + checked.stderr


def test_check_deploy_still_sees_what_plain_http_lacks(tmp_path: Path) -> None:
    """Nothing is silenced wholesale: without the HTTPS proxy the same checks speak up."""
    checked = run_cli("check", "--deploy", **azure_like(tmp_path, BEHIND_HTTPS_PROXY="false"))
    said = checked.stdout + checked.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in said, said


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Server]:
    """A real `magictoolbox run` configured as behind Azure's ingress."""
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'app.sqlite3'}", BEHIND_HTTPS_PROXY="true")
    running = Server(env, tmp_path / "server.log")  # its /healthz answered, in plain HTTP
    try:
        yield running
    finally:
        running.stop()


def test_behind_the_proxy_https_only_secure_cookies_and_hsts(proxied: Server) -> None:
    env = proxied.env
    create_users(env, "operator")
    https = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=proxied.url, timeout=30) as browser:
        probe = browser.get("/healthz")  # what Container Apps' probes send: no proxy header
        assert probe.status_code == 200, probe.text

        plain = browser.get("/accounts/login/?next=/webhooks/")
        assert plain.status_code == 301
        assert plain.headers["Location"] == (
            f"https://127.0.0.1:{proxied.port}/accounts/login/?next=/webhooks/"
        )

        form = browser.get("/accounts/login/", headers=https)
        assert form.status_code == 200
        assert form.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        csrf_cookie = form.headers["Set-Cookie"]
        assert csrf_cookie.startswith("csrftoken=") and "; secure" in csrf_cookie.lower()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        # A Secure cookie is not sent over plain HTTP, which this side of the proxy is: sent
        # by hand, as the browser sends it to the proxy over HTTPS.
        signed_in = browser.post(
            "/accounts/login/",
            data={"username": "operator", "password": "operator-pw", "csrfmiddlewaretoken": token},
            headers={
                **https,
                "Origin": f"https://127.0.0.1:{proxied.port}",
                "Cookie": csrf_cookie.split(";", 1)[0],
            },
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        session = [
            c for c in signed_in.headers.get_list("Set-Cookie") if c.startswith("sessionid=")
        ]
        assert session, signed_in.headers
        assert {"secure", "httponly"} <= {part.strip().lower() for part in session[0].split(";")}


def test_every_page_carries_a_policy_without_inline_code(tmp_path: Path) -> None:
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'app.sqlite3'}")
    server = Server(env, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            for path in ("/", "/accounts/login/", "/api/docs/", "/no-such-page/"):
                policy = browser.get(path).headers.get("Content-Security-Policy", "")
                directives = dict(
                    (part.split()[0], part.split()[1:])
                    for part in policy.split(";")
                    if part.strip()
                )
                assert directives.get("script-src") == ["'self'"], (path, policy)
                assert directives.get("style-src") == ["'self'"], (path, policy)
                assert directives.get("object-src") == ["'none'"], (path, policy)
                assert directives.get("frame-ancestors") == ["'none'"], (path, policy)
            swagger = browser.get("/api/docs/").text
            script = re.findall(r'<script src="([^"]*\?script=[^"]*)"', swagger)
            assert script, swagger
            init = browser.get(script[0].replace("&amp;", "&"))
            assert init.status_code == 200
            assert init.headers["Content-Type"].startswith("application/javascript")
            assert "SwaggerUIBundle(" in init.text
    finally:
        server.stop()


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE), "an inline <script>"),
    (re.compile(r"<style\b", re.IGNORECASE), "a <style> block"),
    (re.compile(r"\sstyle\s*=", re.IGNORECASE), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "an inline event handler"),
    (re.compile(r"javascript:", re.IGNORECASE), "a javascript: URL"),
]


def test_no_template_holds_inline_code() -> None:
    found = [
        f"{template.relative_to(TEMPLATES)}:{number}: {what}"
        for template in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(template.read_text().splitlines(), 1)
        for pattern, what in INLINE
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/eventgrid/events?code=k3y", "/eventgrid/events?code=[redacted]"),
        ("/x/?a=1&CODE=k3y&b=2", "/x/?a=1&CODE=[redacted]&b=2"),
        ("/x/?%63ode=k3y", "/x/?%63ode=[redacted]"),
        ("/blob?sv=2024&sig=abc%2F&se=1", "/blob?sv=2024&sig=[redacted]&se=1"),
        (
            "/x/?access_token=t&api-key=k&cursor=5",
            "/x/?access_token=[redacted]&api-key=[redacted]&cursor=5",
        ),
        ("/api/v1/events/?cursor=10&wait=30", "/api/v1/events/?cursor=10&wait=30"),
        ("/healthz", "/healthz"),
    ],
)
def test_the_access_log_hides_secret_looking_query_values(target: str, logged: str) -> None:
    assert redact_query(target) == logged
