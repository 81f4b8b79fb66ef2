"""Standard Webhooks signatures (https://www.standardwebhooks.com/): secrets, signing, verifying.

A secret is ``whsec_`` + base64 of random bytes; the HMAC-SHA256 key is those bytes. A delivery
carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: one
``v1,<base64 HMAC of "{id}.{timestamp}.{body}">`` per active secret, space-separated, so that
during a rotation a receiver holding either the new or the previous secret accepts it.
``verify`` is the receiving side, for our own tests and tools; it agrees with the reference
library (``standardwebhooks``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Mapping, Sequence

PREFIX = "whsec_"
SECRET_BYTES = 24
TOLERANCE = 300  # seconds a receiver accepts between the timestamp and its clock, either way


class InvalidSignature(Exception):
    """The headers are missing or malformed, the timestamp is out of tolerance, or no
    signature matches."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(PREFIX)
    try:
        # The padding makes unpadded secrets work too, as in the reference library.
        key = base64.b64decode(encoded + "==")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature, ``v1,<base64>``, of ``{msg_id}.{timestamp}.`` + body."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per active secret, space-separated."""
    if isinstance(secrets, str):  # a lone secret would otherwise be signed letter by letter
        raise TypeError("secrets is a sequence of secrets, not one secret")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery: id, timestamp, signature(s) and the JSON content type."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = TOLERANCE,
    *,
    now: float | None = None,
) -> None:
    """Check a delivery's signature with one secret; raise ``InvalidSignature`` if it fails."""
    lower = {name.lower(): value for name, value in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise InvalidSignature("timestamp too old")
    if timestamp > current + tolerance:
        raise InvalidSignature("timestamp too new")
    expected = sign(secret, msg_id, timestamp, body).encode("ascii")
    for candidate in signatures.split(" "):
        # Compare the encoded forms: only a "v1," signature can match, and in constant time.
        if hmac.compare_digest(expected, candidate.encode("utf-8", "replace")):
            return
    raise InvalidSignature("no matching signature")
