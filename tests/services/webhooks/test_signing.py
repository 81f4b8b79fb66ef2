"""Our signatures, checked by the Standard Webhooks reference library (``standardwebhooks``)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.webhooks import signing
from services.webhooks.signing import InvalidSignature

BODY = b'{"specversion":"1.0","type":"MagicToolbox.Execution.Completed","data":{"ok":true}}'
MSG_ID = "msg_2fXkqDbGdT0yYd9Q3Lx1"


def reference_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def ours_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        signing.verify(secret, headers, body)
    except InvalidSignature:
        return False
    return True


def test_a_new_secret_is_whsec_and_24_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert signing.new_secret() != secret


def test_the_published_example_signature() -> None:
    # The example of Svix's documentation, whose scheme Standard Webhooks adopted.
    signature = signing.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_our_headers_verify_with_the_reference_library() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], MSG_ID, int(time.time()), BODY)
    assert headers["webhook-id"] == MSG_ID
    assert headers["content-type"] == "application/json"
    assert headers["webhook-timestamp"].isdigit()
    assert reference_accepts(secret, headers, BODY)
    assert ours_accepts(secret, headers, BODY)


def test_during_a_rotation_either_secret_alone_verifies() -> None:
    new, previous, stranger = signing.new_secret(), signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, previous], MSG_ID, int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, previous):
        assert reference_accepts(secret, headers, BODY)
        assert ours_accepts(secret, headers, BODY)
    assert not reference_accepts(stranger, headers, BODY)
    assert not ours_accepts(stranger, headers, BODY)


def _tamper_body(h: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return h, BODY.replace(b"true", b"false")


def _tamper_timestamp(h: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, BODY


def _tamper_id(h: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return {**h, "webhook-id": MSG_ID + "x"}, BODY


def _stale(h: dict[str, str]) -> tuple[dict[str, str], bytes]:
    # Re-signed, so only the age is wrong: a replay from ten minutes ago.
    return h, BODY


@pytest.mark.parametrize("tamper", [_tamper_body, _tamper_timestamp, _tamper_id])
def test_a_tampered_delivery_fails(
    tamper: Callable[[dict[str, str]], tuple[dict[str, str], bytes]],
) -> None:
    secret = signing.new_secret()
    headers, body = tamper(signing.headers([secret], MSG_ID, int(time.time()), BODY))
    assert not reference_accepts(secret, headers, body)
    with pytest.raises(InvalidSignature):
        signing.verify(secret, headers, body)


def _cases(secret: str) -> list[tuple[str, dict[str, str], bytes]]:
    now = int(time.time())
    good = signing.headers([secret], MSG_ID, now, BODY)
    other = signing.new_secret()
    return [
        ("good", good, BODY),
        ("rotated", signing.headers([other, secret], MSG_ID, now, BODY), BODY),
        ("wrong secret", signing.headers([other], MSG_ID, now, BODY), BODY),
        ("tampered body", good, BODY + b" "),
        ("tampered id", {**good, "webhook-id": "msg_other"}, BODY),
        ("too old", signing.headers([secret], MSG_ID, now - 600, BODY), BODY),
        ("too new", signing.headers([secret], MSG_ID, now + 600, BODY), BODY),
        ("a little early", signing.headers([secret], MSG_ID, now + 60, BODY), BODY),
        ("missing signature", {k: v for k, v in good.items() if k != "webhook-signature"}, BODY),
        ("upper-case names", {k.upper(): v for k, v in good.items()}, BODY),
        (
            "unknown version",
            {**good, "webhook-signature": "v2,abc= " + good["webhook-signature"]},
            BODY,
        ),
    ]


def test_our_verify_agrees_with_the_reference_library() -> None:
    secret = signing.new_secret()
    verdicts = {
        name: (ours_accepts(secret, h, body), reference_accepts(secret, h, body))
        for name, h, body in _cases(secret)
    }
    assert all(ours == theirs for ours, theirs in verdicts.values()), verdicts
    accepted = {name for name, (ours, _) in verdicts.items() if ours}
    assert accepted == {"good", "rotated", "a little early", "upper-case names", "unknown version"}


def test_signing_needs_at_least_one_secret_and_not_a_bare_string() -> None:
    with pytest.raises(ValueError):
        signing.signature_header([], MSG_ID, 1, BODY)
    with pytest.raises(TypeError):
        signing.signature_header(signing.new_secret(), MSG_ID, 1, BODY)  # type: ignore[arg-type]
