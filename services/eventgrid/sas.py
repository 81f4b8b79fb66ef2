"""Shared access signatures for publishing, checked as azure-eventgrid's ``generate_sas`` makes
them: ``r=<url-encoded resource>&e=<url-encoded expiry>&s=<url-encoded base64 HMAC-SHA256>``,
the HMAC keyed with the base64-decoded topic key over ``r=…&e=…``. The resource is
``<topic endpoint>?apiVersion=…``; any host may name this machine, so only its path is checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

SAS_SAFE = "~()*!.'"  # what generate_sas leaves unquoted


def sas_problem(
    token: str, key: str, path: str = "/api/events", now: datetime | None = None
) -> str | None:
    """Why ``token`` is not a valid SAS token for ``key`` (None when it is valid): signed as
    azure-eventgrid's ``generate_sas`` signs, for a resource at ``path``, not expired."""
    signed, marker, signature = token.rpartition("&s=")
    if not marker:
        return "the token has no signature (s=)"
    fields = dict(part.partition("=")[::2] for part in signed.split("&"))
    if "r" not in fields or "e" not in fields:
        return "the token lacks its resource (r=) or expiry (e=)"
    try:
        digest = hmac.new(base64.b64decode(key), signed.encode("ascii"), hashlib.sha256).digest()
    except (binascii.Error, UnicodeEncodeError):
        return "the token cannot be checked: the topic key is not base64, or the token not ASCII"
    expected = quote(base64.b64encode(digest), safe=SAS_SAFE)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "the token's signature does not match the topic key"
    if not urlsplit(unquote(fields["r"])).path.rstrip("/").endswith(path):
        return "the token is for another resource"
    expiry = _sas_expiry(unquote(fields["e"]))
    if expiry is None:
        return "the token's expiry is not a date"
    if expiry <= (now or datetime.now(UTC)):
        return "the token has expired"
    return None


def _sas_expiry(text: str) -> datetime | None:
    """``str(datetime)`` as generate_sas writes it; .NET's general format as its SDK writes it."""
    for parse in (
        datetime.fromisoformat,
        lambda t: datetime.strptime(t, "%m/%d/%Y %I:%M:%S %p"),
    ):
        try:
            moment = parse(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
