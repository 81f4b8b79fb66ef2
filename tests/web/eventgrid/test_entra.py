"""Event Grid's Entra ID-protected delivery: a bearer token signed by a key of the tenant's JWKS,
for our audience, from our tenant, in its validity window. The JWKS is a file here (the setting
also takes a file:// URL or a path), with an RSA key made for the test."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.eventgrid import protocol
from tests.web.api.test_executions_api import assert_problem
from tests.web.deployment import Configure, Deployment
from tests.web.eventgrid.conftest import BATCH, URL, dumps, fingerprint

AUDIENCE = "api://magictoolbox-eventgrid-test"
TENANT = "11111111-2222-3333-4444-555555555555"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
KID = "test-key-1"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_jwks(path: Path, key: rsa.RSAPrivateKey, kid: str = KID) -> Path:
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


@pytest.fixture
def entra(receiver: Deployment, configure: Configure, tmp_path: Path, signing_key) -> Path:
    """Only tokens are accepted: no receiver key."""
    configure(EVENTGRID_RECEIVER_KEY="")
    configure(EVENTGRID_RECEIVER_AUDIENCE=AUDIENCE)
    configure(EVENTGRID_RECEIVER_TENANT_ID=TENANT)
    jwks = write_jwks(tmp_path / "jwks.json", signing_key)
    configure(EVENTGRID_RECEIVER_JWKS_URL=str(jwks))
    return jwks


def mint(key: rsa.RSAPrivateKey, *, kid: str = KID, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "appid": "4962773b-9cdb-44cf-a8bf-237846a00ab7",  # Event Grid's own application
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, "RS256", {"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_is_accepted(client, entra, signing_key, cloudevents, woken) -> None:
    token = mint(signing_key)
    answer = client.post(URL, dumps(cloudevents), content_type=BATCH, headers=bearer(token))
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"received": len(cloudevents), "ours": len(cloudevents)}
    assert woken == [1]
    handshake = client.options(
        URL, headers={protocol.REQUEST_ORIGIN: "eventgrid.azure.net", **bearer(token)}
    )
    assert handshake[protocol.ALLOWED_ORIGIN] == "eventgrid.azure.net"


def test_a_v1_token_of_the_tenant_and_a_file_url(
    client, entra: Path, signing_key, configure, cloudevents
) -> None:
    configure(EVENTGRID_RECEIVER_JWKS_URL=entra.as_uri())
    token = mint(signing_key, iss=f"https://sts.windows.net/{TENANT}/")
    answer = client.post(URL, dumps(cloudevents), content_type=BATCH, headers=bearer(token))
    assert answer.status_code == 200, answer.content


def test_without_a_tenant_the_issuer_is_not_checked(
    client, entra, signing_key, configure, cloudevents
) -> None:
    configure(EVENTGRID_RECEIVER_TENANT_ID="")
    token = mint(signing_key, iss="https://login.microsoftonline.com/another-tenant/v2.0")
    answer = client.post(URL, dumps(cloudevents), content_type=BATCH, headers=bearer(token))
    assert answer.status_code == 200, answer.content


@pytest.mark.parametrize(
    "case",
    [
        "wrong-audience",
        "wrong-issuer",
        "another-tenant",
        "expired",
        "not-yet-valid",
        "no-expiry",
        "another-key",
        "unknown-kid",
        "not-a-jwt",
        "unsigned",
    ],
)
def test_a_bad_token_is_refused(
    client, entra, signing_key, other_key, cloudevents, woken, receiver: Deployment, case: str
) -> None:
    now = int(time.time())
    token = {
        "wrong-audience": lambda: mint(signing_key, aud="api://someone-else"),
        "wrong-issuer": lambda: mint(signing_key, iss="https://evil.example/v2.0"),
        "another-tenant": lambda: mint(
            signing_key, iss="https://login.microsoftonline.com/another-tenant/v2.0"
        ),
        "expired": lambda: mint(signing_key, exp=now - 3600),
        "not-yet-valid": lambda: mint(signing_key, nbf=now + 3600),
        "no-expiry": lambda: mint(signing_key, exp=None),
        "another-key": lambda: mint(other_key),  # same kid, wrong signature
        "unknown-kid": lambda: mint(other_key, kid="rotated-away"),
        "not-a-jwt": lambda: "not-a-jwt",
        "unsigned": lambda: jwt.encode({"aud": AUDIENCE, "iss": ISSUER}, None, "none"),
    }[case]()
    before = fingerprint(receiver.store)
    answer = client.post(URL, dumps(cloudevents), content_type=BATCH, headers=bearer(token))
    assert_problem(answer, 401, "invalid_token")
    assert 'error="invalid_token"' in answer["WWW-Authenticate"]
    assert woken == []
    assert fingerprint(receiver.store) == before


def test_without_a_token_the_challenge_names_bearer(client, entra, cloudevents) -> None:
    answer = client.post(URL, dumps(cloudevents), content_type=BATCH)
    assert_problem(answer, 401, "unauthorized")
    assert answer["WWW-Authenticate"] == 'Bearer realm="eventgrid"'


def test_a_key_or_a_token_either_will_do(
    client, entra, signing_key, configure, cloudevents
) -> None:
    configure(EVENTGRID_RECEIVER_KEY="the-key")
    by_key = client.post(
        URL, dumps(cloudevents), content_type=BATCH, headers={"X-MagicToolbox-Key": "the-key"}
    )
    by_token = client.post(
        URL, dumps(cloudevents), content_type=BATCH, headers=bearer(mint(signing_key))
    )
    assert by_key.status_code == by_token.status_code == 200
    challenge = client.post(URL, dumps(cloudevents), content_type=BATCH)["WWW-Authenticate"]
    assert "MagicToolbox-Key" in challenge and "Bearer" in challenge


def test_a_rotated_key_set_is_read_again(
    client, entra: Path, signing_key, other_key, cloudevents
) -> None:
    assert (
        client.post(
            URL, dumps(cloudevents), content_type=BATCH, headers=bearer(mint(signing_key))
        ).status_code
        == 200
    )
    write_jwks(entra, other_key, kid="test-key-2")
    rotated = mint(other_key, kid="test-key-2")
    assert (
        client.post(
            URL, dumps(cloudevents), content_type=BATCH, headers=bearer(rotated)
        ).status_code
        == 200
    )
    old = client.post(
        URL, dumps(cloudevents), content_type=BATCH, headers=bearer(mint(signing_key))
    )
    assert_problem(old, 401, "invalid_token")


def test_unreadable_signing_keys_ask_event_grid_to_retry(
    client, entra, signing_key, configure, tmp_path: Path, cloudevents, woken
) -> None:
    configure(EVENTGRID_RECEIVER_JWKS_URL=str(tmp_path / "missing.json"))
    answer = client.post(
        URL, dumps(cloudevents), content_type=BATCH, headers=bearer(mint(signing_key))
    )
    assert_problem(answer, 503, "token_keys_unavailable")
    assert answer["Retry-After"]
    assert woken == []


class JwksServer:
    """The tenant's key set over HTTP on loopback, counting how often it is fetched."""

    def __init__(self, jwks: bytes) -> None:
        self.jwks = jwks
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.jwks)))
                self.end_headers()
                self.wfile.write(owner.jwks)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/discovery/v2.0/keys"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def jwks_server(entra: Path) -> Iterator[JwksServer]:
    server = JwksServer(entra.read_bytes())
    yield server
    server.close()


def test_keys_from_a_url_are_fetched_once(
    client, jwks_server: JwksServer, signing_key, configure, cloudevents
) -> None:
    configure(EVENTGRID_RECEIVER_JWKS_URL=jwks_server.url)
    for _ in range(3):
        answer = client.post(
            URL, dumps(cloudevents), content_type=BATCH, headers=bearer(mint(signing_key))
        )
        assert answer.status_code == 200, answer.content
    assert jwks_server.fetches == 1
    forged = client.post(URL, dumps(cloudevents), content_type=BATCH, headers=bearer("a.b.c"))
    assert_problem(forged, 401, "invalid_token")


def test_an_unreachable_key_url_asks_event_grid_to_retry(
    client, entra, signing_key, configure, cloudevents, woken
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    configure(EVENTGRID_RECEIVER_JWKS_URL=f"http://127.0.0.1:{port}/keys")
    answer = client.post(
        URL, dumps(cloudevents), content_type=BATCH, headers=bearer(mint(signing_key))
    )
    assert_problem(answer, 503, "token_keys_unavailable")
    assert woken == []
