"""Who may push to the Event Grid receiver: the holder of a shared key, or of an Entra ID token.

A delivery only wakes this process's readers, so a forged one cannot make anything be written,
but an open receiver would let anyone make the process work; so it refuses everything until one
proof is configured. ``EVENTGRID_RECEIVER_KEY`` comes in ``X-MagicToolbox-Key`` (the
subscription's secret delivery attribute) or ``?code=``, compared in constant time. ``?code=``
stays accepted because Event Grid's validation handshakes use the endpoint URL and may come
without the delivery attribute headers; a query string is where access logs look, so
``magictoolbox run``'s log writes it ``[redacted]``, and nothing here logs a URL.
``EVENTGRID_RECEIVER_AUDIENCE``: an RS256 bearer token for that audience, signed by a key of the
JWKS, within ``nbf``/``exp``, and issued by ``EVENTGRID_RECEIVER_TENANT_ID`` when set. Signing
keys are cached, not fetched each time.
"""

from __future__ import annotations

import functools
import hmac
import logging
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from django.http import HttpRequest

from web.parts import parts

log = logging.getLogger(__name__)

KEY_HEADER = "X-MagicToolbox-Key"
KEY_QUERY = "code"
LEEWAY_SECONDS = 60  # clock skew between Entra ID and this machine
JWKS_LIFESPAN_SECONDS = 3600
JWKS_TIMEOUT_SECONDS = 10
KEY_CHALLENGE = 'MagicToolbox-Key realm="eventgrid"'
BEARER_CHALLENGE = 'Bearer realm="eventgrid"'


class KeysUnavailable(Exception):
    """The token's signing keys cannot be had right now (not an answer about the token)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, as the receiver answers it."""

    status: int
    code: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def check(request: HttpRequest) -> Refusal | None:
    """None when the request proves it comes from our subscription, else why not."""
    config = parts().settings
    key = config.EVENTGRID_RECEIVER_KEY
    audience = config.EVENTGRID_RECEIVER_AUDIENCE
    if not key and not audience:
        return Refusal(
            401,
            "receiver_not_configured",
            "the Event Grid receiver accepts nothing until EVENTGRID_RECEIVER_KEY or "
            "EVENTGRID_RECEIVER_AUDIENCE is set",
            {"WWW-Authenticate": KEY_CHALLENGE},
        )
    if key and _carries_key(request, key):
        return None
    token = _bearer(request)
    if audience and token:
        try:
            verify_token(
                token,
                audience=audience,
                tenant=config.EVENTGRID_RECEIVER_TENANT_ID,
                jwks_url=config.receiver_jwks_url,
            )
        except KeysUnavailable as exc:
            log.error("Event Grid receiver: cannot check a bearer token: %s", exc)
            return Refusal(
                503,
                "token_keys_unavailable",
                "the keys that sign Event Grid's tokens cannot be read; try again later",
                {"Retry-After": "30"},
            )
        except jwt.PyJWTError as exc:
            return Refusal(
                401,
                "invalid_token",
                f"the bearer token was refused: {exc}",
                {"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'},
            )
        return None
    challenges = ([KEY_CHALLENGE] if key else []) + ([BEARER_CHALLENGE] if audience else [])
    return Refusal(
        401,
        "unauthorized",
        f"send the receiver's key in {KEY_HEADER} or ?{KEY_QUERY}="
        + (", or an Entra ID bearer token" if audience else ""),
        {"WWW-Authenticate": ", ".join(challenges)},
    )


def verify_token(token: str, *, audience: str, tenant: str, jwks_url: str) -> dict[str, Any]:
    """The claims of an Entra ID token for ``audience``; a ``jwt.PyJWTError`` when it is not one."""
    key = signing_key(token, jwks_url)
    issuers = (
        [f"https://login.microsoftonline.com/{tenant}/v2.0", f"https://sts.windows.net/{tenant}/"]
        if tenant
        else None
    )
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuers,
        leeway=LEEWAY_SECONDS,
        options={"require": ["exp", "aud", *(["iss"] if tenant else [])]},
    )


def signing_key(token: str, jwks_url: str) -> jwt.PyJWK:
    """The key that signed ``token``, from the JWKS at ``jwks_url`` (a URL, file:// URL or path)."""
    if not jwks_url:
        raise KeysUnavailable("set EVENTGRID_RECEIVER_JWKS_URL or EVENTGRID_RECEIVER_TENANT_ID")
    if jwks_url.startswith(("https://", "http://")):
        try:
            return _client(jwks_url).get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(f"{jwks_url}: {exc}") from exc
    if jwks_url.startswith("file:"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(jwks_url).path)
    else:
        path = jwks_url
    try:
        keys = _keys_in(Path(path).read_bytes())
    except (OSError, ValueError, AttributeError, jwt.PyJWKSetError) as exc:
        raise KeysUnavailable(f"{path}: {exc}") from exc
    kid = jwt.get_unverified_header(token).get("kid")
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    try:
        return keys[kid]
    except KeyError:
        raise jwt.InvalidTokenError(f"no signing key has the token's kid {kid!r}") from None


_clients: dict[str, jwt.PyJWKClient] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> jwt.PyJWKClient:
    """One client per URL, so its cache of the key set lives as long as the process."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = jwt.PyJWKClient(
                url,
                cache_keys=True,
                lifespan=JWKS_LIFESPAN_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
        return client


@functools.lru_cache(maxsize=8)
def _keys_in(jwks: bytes) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document, by ``kid``. Cached by content: reading a small file
    is cheap, building its keys is not, and a timestamp can miss a quick rewrite."""
    keys = jwt.PyJWKSet.from_json(jwks.decode()).keys
    return {k.key_id: k for k in keys if k.public_key_use in (None, "sig")}


def _carries_key(request: HttpRequest, key: str) -> bool:
    expected = key.encode()
    offered = [request.headers.get(KEY_HEADER, ""), request.GET.get(KEY_QUERY, "")]
    # Both compared, always: how long the check takes says nothing about which one was tried.
    matches = [hmac.compare_digest(value.encode(), expected) for value in offered]
    return any(matches)


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
