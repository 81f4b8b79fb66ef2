"""The executions API as a program uses it: submit (sync and async), follow, download, act on
executions, page through history; every refusal is problem+json with a stable code."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from PIL import Image
from rest_framework.test import APIClient

from handlers import work
from services.executions.commands import Fail, Start
from tests.web.api.conftest import png
from tests.web.deployment import Deployment

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["code"] == code and body["status"] == status and body["detail"]
    return body


def encode(client: APIClient, text: str = "hello", **headers: str):
    return client.post(
        "/api/v1/executions/",
        {"tool": "base64-encode", "params": {"text": text}},
        format="json",
        headers=headers,
    )


def empty_file() -> io.BytesIO:
    empty = io.BytesIO(b"")
    empty.name = "photo.png"
    return empty


def rotate(client: APIClient, upload=None, **headers: str):
    return client.post(
        "/api/v1/executions/",
        {"tool": "image-rotate", "params": json.dumps({"angle": 90}), "file": upload or png()},
        format="multipart",
        headers=headers,
    )


# -- submitting ----------------------------------------------------------------------------------


def test_a_sync_tool_answers_201_with_its_result_inline(alice: APIClient) -> None:
    response = encode(alice, "hello")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "completed" and body["finished"] is True
    assert body["result"] == "aGVsbG8="
    assert response["Location"] == f"/api/v1/executions/{body['id']}/"
    assert alice.get(response["Location"]).json()["result"] == "aGVsbG8="


def test_a_sync_tool_with_a_file_takes_it_as_multipart(alice: APIClient) -> None:
    upload = io.BytesIO(b"abc")
    upload.name = "notes.txt"
    response = alice.post(
        "/api/v1/executions/",
        {"tool": "hash-file", "params": "{}", "file": upload},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        in (response.json()["result"])
    )


def test_an_async_tool_is_queued_then_followed_to_its_download(
    alice: APIClient, deployment: Deployment
) -> None:
    response = rotate(alice, png(40, 20))
    assert response.status_code == 202
    location = response["Location"]
    queued = alice.get(location).json()  # read-your-writes: before the projector ran
    assert queued["status"] == "uploaded" and queued["finished"] is False
    assert queued["input_filename"] == "photo.png"
    assert "cancel" in queued["actions"] and queued["links"]["download"] is None

    assert deployment.work(queued["id"]) == "completed"
    done = alice.get(location).json()
    assert done["status"] == "completed" and done["percent"] == 100.0
    assert done["output_filename"] == "photo-rotated.png"

    download = alice.get(done["links"]["download"])
    assert download.status_code == 200
    assert "attachment" in download["Content-Disposition"]
    assert 'filename="photo-rotated.png"' in download["Content-Disposition"]
    image = Image.open(io.BytesIO(b"".join(download.streaming_content)))
    assert image.size == (20, 40)

    events = alice.get(done["links"]["events"]).json()
    assert [e["type"].rsplit(".", 1)[-1] for e in events][:3] == [
        "Submitted",
        "Uploaded",
        "Processing",
    ]
    assert events[-1]["type"] == "MagicToolbox.Execution.Completed"
    assert all(e["specversion"] == "1.0" and e["subject"].endswith(done["id"]) for e in events)
    assert [e["streamversion"] for e in events] == list(range(len(events)))
    assert events[0]["summary"] == "image-rotate (async), input photo.png"
    assert events[-1]["summary"].startswith("a file in ")


def test_an_idempotency_key_makes_a_repeated_submit_return_the_first_execution(
    alice: APIClient, deployment: Deployment
) -> None:
    first = rotate(alice, png(), **{"Idempotency-Key": "order-42"})
    again = rotate(alice, png(8, 8), **{"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert deployment.events(first.json()["id"]) == ["Submitted", "Uploaded"]
    assert len(deployment.uploads()) == 1  # the repeat stored nothing

    other_tool = encode(alice, "x", **{"Idempotency-Key": "order-42"})
    assert_problem(other_tool, 422, "idempotency_key_reused")


def test_the_same_key_of_another_user_is_another_execution(
    alice: APIClient, bob: APIClient
) -> None:
    mine = encode(alice, "a", **{"Idempotency-Key": "k1"}).json()
    theirs = encode(bob, "b", **{"Idempotency-Key": "k1"}).json()
    assert mine["id"] != theirs["id"] and theirs["result"] == "Yg=="


def test_submissions_that_cannot_be_accepted_are_refused_and_store_nothing(
    alice: APIClient, deployment: Deployment
) -> None:
    head = deployment.store.head_position()
    text = io.BytesIO(b"just some text, not an image")
    text.name = "fake.png"
    exe = io.BytesIO(b"MZ\x90\x00")
    exe.name = "tool.exe"
    cases = [
        (rotate(alice, text), 415, "file_type_mismatch"),
        (rotate(alice, exe), 415, "unsupported_file_type"),
        (
            alice.post(
                "/api/v1/executions/",
                {"tool": "image-rotate", "params": json.dumps({"angle": 400})},
                format="multipart",
            ),
            400,
            "invalid_params",
        ),
        (
            alice.post(
                "/api/v1/executions/",
                {"tool": "image-rotate", "params": "{not json"},
                format="multipart",
            ),
            400,
            "invalid_params",
        ),
        (
            alice.post("/api/v1/executions/", {"tool": "image-rotate"}, format="multipart"),
            400,
            "input_required",
        ),
        (  # a NUL is not JSON either (schemathesis's find: DRF refused it as a bare CharField)
            alice.post(
                "/api/v1/executions/",
                {"tool": "image-rotate", "params": '{"angle": 90}\x00'},
                format="multipart",
            ),
            400,
            "invalid_params",
        ),
        (
            alice.post(
                "/api/v1/executions/",
                {"tool": "image-rotate", "params": "{}", "file": empty_file()},
                format="multipart",
            ),
            400,
            "empty_file",
        ),
        (
            alice.post("/api/v1/executions/", {"tool": "no-such-tool"}, format="json"),
            404,
            "unknown_tool",
        ),
        (alice.post("/api/v1/executions/", {"params": {}}, format="json"), 400, "invalid_request"),
        (
            alice.post("/api/v1/executions/", b"{broken", content_type="application/json"),
            400,
            "malformed_request",
        ),
        (
            alice.post(
                "/api/v1/executions/",
                b'{"tool": "hash-text", "params": {"text": NaN}}',
                content_type="application/json",
            ),
            400,
            "malformed_request",
        ),
        (
            alice.post(
                "/api/v1/executions/", b'{"tool": "hash-\xff"}', content_type="application/json"
            ),
            400,
            "malformed_request",
        ),
        (  # nested past any sense: refused, not a stack overflow (a 500 before orjson)
            alice.post(
                "/api/v1/executions/",
                b'{"tool": "hash-text", "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                content_type="application/json",
            ),
            400,
            "malformed_request",
        ),
        (
            alice.post("/api/v1/executions/", b"tool=x", content_type="text/plain"),
            415,
            "unsupported_media_type",
        ),
    ]
    for response, status, code in cases:
        assert_problem(response, status, code)
    assert deployment.store.head_position() == head
    assert deployment.uploads() == []


def test_an_upload_larger_than_the_global_limit_is_refused_before_it_is_read(
    alice: APIClient, deployment: Deployment
) -> None:
    response = alice.post(
        "/api/v1/executions/",
        b"",
        content_type="multipart/form-data; boundary=x",
        headers={"Content-Length": str(600 * 1024 * 1024)},
    )
    body = assert_problem(response, 413, "file_too_large")
    assert "524288000" in body["detail"]
    assert deployment.store.head_position() == 0


def test_an_upload_over_the_tools_own_limit_is_refused(
    alice: APIClient, deployment: Deployment
) -> None:
    from web.parts import parts

    tool = parts().registry.get("image-rotate")
    big = io.BytesIO(png().getvalue() + b"\0" * (tool.upload_limit + 1))
    big.name = "big.png"
    assert_problem(rotate(alice, big), 413, "file_too_large")
    assert deployment.store.head_position() == 0 and deployment.uploads() == []


# -- reading -------------------------------------------------------------------------------------


def test_history_pages_newest_first_with_filters(alice: APIClient, deployment: Deployment) -> None:
    ids = [encode(alice, f"t{i}").json()["id"] for i in range(5)]
    rotate(alice)
    deployment.project()
    seen: list[str] = []
    url = "/api/v1/executions/?tool=base64-encode&limit=2"
    pages = 0
    while url:
        page = alice.get(url).json()
        seen += [e["id"] for e in page["results"]]
        assert all(e["tool"] == "base64-encode" for e in page["results"])
        url = page["next"]
        pages += 1
    assert pages == 3 and seen == ids[::-1]
    queued = alice.get("/api/v1/executions/?status=uploaded").json()["results"]
    assert [e["tool"] for e in queued] == ["image-rotate"]
    assert_problem(alice.get("/api/v1/executions/?status=bogus"), 400, "invalid_request")
    # Outside the schema's cursor pattern (issue 16: "0" was schema-valid and refused).
    assert_problem(alice.get("/api/v1/executions/?cursor=0"), 400, "invalid_request")
    nowhere = f"1000~{'0' * 32}"  # in the pattern: a page, empty, never a refusal
    assert alice.get(f"/api/v1/executions/?cursor={nowhere}").json()["results"] == []
    assert_problem(alice.get("/api/v1/executions/?limit=0"), 400, "invalid_request")


def test_an_unknown_or_malformed_execution_id_is_not_found(alice: APIClient) -> None:
    assert_problem(
        alice.get("/api/v1/executions/00000000-0000-0000-0000-000000000000/"),
        404,
        "execution_not_found",
    )
    assert_problem(alice.get("/api/v1/executions/not-a-uuid/"), 404, "execution_not_found")
    assert_problem(alice.get("/api/v1/nothing-here/"), 404, "not_found")


# -- acting on executions ------------------------------------------------------------------------


def test_cancel_a_queued_execution_then_cancelling_again_conflicts(
    alice: APIClient, deployment: Deployment
) -> None:
    queued = rotate(alice).json()
    cancelled = alice.post(f"/api/v1/executions/{queued['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert deployment.work(queued["id"]) == "skipped"  # no worker runs it now
    assert_problem(
        alice.post(f"/api/v1/executions/{queued['id']}/cancel/"), 409, "illegal_transition"
    )


def test_a_final_failure_cannot_be_retried_only_replayed(
    alice: APIClient, deployment: Deployment
) -> None:
    broken = io.BytesIO(png().getvalue()[:60])  # a PNG signature, then nothing usable
    broken.name = "broken.png"
    queued = rotate(alice, broken).json()
    assert deployment.work(queued["id"]) == "failed"
    failed = alice.get(f"/api/v1/executions/{queued['id']}/").json()
    assert failed["error"]["code"] == "invalid_input" and failed["error"]["retryable"] is False
    assert "retry" not in failed["actions"] and "replay" in failed["actions"]

    for _ in range(2):  # issue 16: retried without end before
        refused = alice.post(f"/api/v1/executions/{queued['id']}/retry/")
        assert_problem(refused, 409, "not_retryable")
    again = alice.get(f"/api/v1/executions/{queued['id']}/").json()
    assert again["status"] == "failed" and again["attempt"] == 1

    done = encode(alice).json()
    assert_problem(alice.post(f"/api/v1/executions/{done['id']}/retry/"), 409, "illegal_transition")


def test_a_failure_with_its_retry_scheduled_is_retrying_and_not_finished(
    alice: APIClient, deployment: Deployment
) -> None:
    queued = rotate(alice).json()
    execution_id, location = UUID(queued["id"]), queued["links"]["self"]
    assert (queued["next_attempt_at"], queued["max_attempts"]) == (None, None)
    service = deployment.parts.service
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), timedelta(minutes=5)))
    due = datetime(2030, 1, 1, 12, 0, 25, tzinfo=UTC)
    service.handle(
        execution_id, Fail("timeout", "too slow", True, next_attempt_at=due, max_attempts=3)
    )
    unprojected = alice.get(location).json()  # from the stream: the projector has not run
    deployment.project()
    pending = alice.get(location).json()
    assert pending == unprojected
    assert pending["status"] == "retrying" and pending["finished"] is False
    assert (pending["next_attempt_at"], pending["max_attempts"]) == ("2030-01-01T12:00:25Z", 3)
    assert (pending["attempt"], pending["finished_at"]) == (1, None)
    assert pending["error"] == {"code": "timeout", "message": "too slow", "retryable": True}
    # What the decider accepts now: a retry at once, or a cancel of the pending one.
    assert "retry" in pending["actions"] and "cancel" in pending["actions"]
    listed = alice.get("/api/v1/executions/?status=retrying").json()["results"]
    assert [e["id"] for e in listed] == [queued["id"]]
    assert alice.get("/api/v1/executions/?status=failed").json()["results"] == []

    requeued = alice.post(f"{location}retry/").json()
    assert requeued["status"] == "retrying" and requeued["finished"] is False
    assert (requeued["next_attempt_at"], requeued["max_attempts"]) == (None, 3)
    assert "cancel" in requeued["actions"] and "retry" not in requeued["actions"]
    assert alice.post(f"{location}cancel/").json()["finished"] is True


def test_a_pending_retry_can_be_cancelled_and_then_never_comes(
    alice: APIClient, deployment: Deployment
) -> None:
    queued = rotate(alice).json()
    execution_id, location = UUID(queued["id"]), queued["links"]["self"]
    service = deployment.parts.service
    service.handle(execution_id, Start("worker-1", datetime.now(UTC), timedelta(minutes=5)))
    due = datetime.now(UTC) - timedelta(seconds=1)  # due already: the next sweep would take it
    service.handle(execution_id, Fail("timeout", "slow", True, next_attempt_at=due, max_attempts=3))

    cancelled = alice.post(f"{location}cancel/").json()

    assert cancelled["status"] == "cancelled" and cancelled["finished"] is True
    assert cancelled["next_attempt_at"] is None
    _, retries = work.sweep(deployment.parts)
    assert retries.retried == []
    assert service.load(execution_id).state.status.value == "cancelled"


def test_replay_runs_the_same_tool_params_and_input_as_a_new_execution(
    alice: APIClient, deployment: Deployment
) -> None:
    first = encode(alice, "again").json()
    replayed = alice.post(f"/api/v1/executions/{first['id']}/replay/")
    assert replayed.status_code == 201  # a new execution, run already (a sync tool)
    body = replayed.json()
    assert replayed["Location"] == body["links"]["self"]
    assert body["id"] != first["id"] and body["replay_of"] == first["id"]
    assert body["status"] == "completed" and body["result"] == first["result"]


def test_delete_removes_the_files_and_the_execution_but_keeps_its_stream(
    alice: APIClient, deployment: Deployment
) -> None:
    queued = rotate(alice).json()
    assert_problem(
        alice.delete(f"/api/v1/executions/{queued['id']}/"), 409, "execution_not_finished"
    )
    deployment.work(queued["id"])
    assert deployment.uploads() != []
    before = deployment.events(queued["id"])
    deleted = alice.delete(f"/api/v1/executions/{queued['id']}/")
    assert deleted.status_code == 204 and not deleted.content
    assert deployment.uploads() == [] and list(deployment.blobs.list("processed")) == []
    assert deployment.events(queued["id"]) == [*before, "Expired"]  # the audit trail stays
    deployment.project()
    base = f"/api/v1/executions/{queued['id']}/"
    for gone in (
        alice.get(base),
        alice.get(f"{base}events/"),
        alice.get(f"{base}download/"),
        alice.post(f"{base}replay/"),
        alice.delete(base),
    ):
        assert_problem(gone, 404, "execution_deleted")
    assert queued["id"] not in [e["id"] for e in alice.get("/api/v1/executions/").json()["results"]]


def test_download_of_an_inline_result_says_there_is_no_file(alice: APIClient) -> None:
    done = encode(alice).json()
    assert "download" not in done["actions"]
    assert_problem(alice.get(f"/api/v1/executions/{done['id']}/download/"), 409, "no_output")


# -- other users, authentication, limits ----------------------------------------------------------


def test_another_users_execution_is_not_found_for_every_endpoint(
    alice: APIClient, bob: APIClient, deployment: Deployment
) -> None:
    queued = rotate(alice).json()
    done = encode(alice).json()
    deployment.project()
    base = f"/api/v1/executions/{queued['id']}/"
    for response in (
        bob.get(base),
        bob.get(f"{base}events/"),
        bob.get(f"/api/v1/executions/{done['id']}/download/"),
        bob.post(f"{base}cancel/"),
        bob.post(f"{base}retry/"),
        bob.post(f"{base}replay/"),
        bob.delete(f"/api/v1/executions/{done['id']}/"),
    ):
        assert_problem(response, 404, "execution_not_found")
    assert bob.get("/api/v1/executions/").json()["results"] == []
    assert alice.get(base).json()["status"] == "uploaded"  # untouched by bob's attempts
    assert deployment.events(queued["id"]) == ["Submitted", "Uploaded"]


def test_without_credentials_the_api_asks_for_them(deployment: Deployment, db) -> None:
    anonymous = APIClient()
    response = anonymous.get("/api/v1/executions/")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert_problem(forged.get("/api/v1/executions/"), 401, "authentication_failed")
    assert anonymous.get("/api/v1/tools/").status_code == 200  # the catalogue is public


def test_a_bearer_token_works_too(alice: APIClient, deployment: Deployment) -> None:
    from rest_framework.authtoken.models import Token

    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get().key}")
    assert bearer.get("/api/v1/executions/").status_code == 200


def test_the_session_of_a_signed_in_browser_works_with_csrf(deployment: Deployment, db) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user("carol", password="pw-carol-123")
    browser = APIClient(enforce_csrf_checks=True)
    assert browser.login(username="carol", password="pw-carol-123")
    assert browser.get("/api/v1/executions/").status_code == 200
    assert_problem(encode(browser), 403, "permission_denied")  # no CSRF token


def test_too_many_requests_are_throttled_with_retry_after(
    alice: APIClient, deployment: Deployment, configure
) -> None:
    configure(API_THROTTLE_USER="3/hour")
    for _ in range(3):
        assert alice.get("/api/v1/executions/").status_code == 200
    response = alice.get("/api/v1/executions/")
    body = assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0 and body["retry_after"] > 0


def test_submits_have_their_own_lower_limit(alice: APIClient, configure) -> None:
    configure(API_THROTTLE_SUBMIT="2/hour")
    assert encode(alice).status_code == encode(alice).status_code == 201
    assert_problem(encode(alice), 429, "throttled")
    assert alice.get("/api/v1/executions/").status_code == 200  # reads are not submits


def test_unsupported_methods_are_problems_too(alice: APIClient) -> None:
    response = alice.put("/api/v1/executions/", {}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_a_revoked_token_stops_working_at_once(alice: APIClient) -> None:
    from rest_framework.authtoken.models import Token

    assert alice.get("/api/v1/executions/").status_code == 200  # now remembered
    Token.objects.all().delete()
    assert_problem(alice.get("/api/v1/executions/"), 401, "authentication_failed")


def test_a_deactivated_user_is_refused_at_once(alice: APIClient) -> None:
    from django.contrib.auth.models import User

    assert alice.get("/api/v1/executions/").status_code == 200
    User.objects.filter(username="alice").update(is_active=False)  # no signal: an UPDATE
    user = User.objects.get(username="alice")
    user.save()  # as the admin does it
    assert_problem(alice.get("/api/v1/executions/"), 401, "authentication_failed")


def test_more_refusals_each_with_its_code(alice: APIClient, deployment: Deployment) -> None:
    notes = io.BytesIO(b"some notes")
    notes.name = "notes.txt"
    unwanted = alice.post(
        "/api/v1/executions/",
        {"tool": "base64-encode", "params": json.dumps({"text": "x"}), "file": notes},
        format="multipart",
    )
    assert_problem(unwanted, 400, "no_input_expected")
    assert_problem(encode(alice, **{"Idempotency-Key": "x" * 300}), 400, "invalid_idempotency_key")
    huge = alice.post(
        "/api/v1/executions/",
        b'{"tool": "base64-encode", "params": {"text": "' + b"a" * (3 * 1024 * 1024) + b'"}}',
        content_type="application/json",
    )
    assert_problem(huge, 400, "bad_request")  # over Django's 2.5 MB for a body without a file
    assert deployment.store.head_position() == 0


def test_replaying_an_execution_whose_files_are_gone_says_so(
    alice: APIClient, deployment: Deployment
) -> None:
    queued = rotate(alice).json()
    deployment.work(queued["id"])
    for blob in list(deployment.blobs.list("uploads")):
        deployment.blobs.delete("uploads", blob.name)  # as retention would, the event aside
    replayed = alice.post(f"/api/v1/executions/{queued['id']}/replay/")
    assert_problem(replayed, 410, "input_expired")


def test_an_idempotency_key_outside_the_schema_is_refused_before_anything_runs(
    alice: APIClient, deployment: Deployment
) -> None:
    for key in ("key\x01", "k" * 256, " padded"):
        refused = alice.post(
            "/api/v1/executions/",
            {"tool": "hash-text", "params": {"text": "x"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        assert_problem(refused, 400, "invalid_idempotency_key")
    assert deployment.store.head_position() == 0


def test_a_blank_number_in_the_query_is_refused_not_ignored(alice: APIClient) -> None:
    assert_problem(alice.get("/api/v1/events/?wait="), 400, "invalid_request")
    assert_problem(alice.get("/api/v1/executions/?limit="), 400, "invalid_request")
    assert alice.get("/api/v1/executions/?tool=&status=&cursor=").status_code == 200


def test_a_slug_with_spaces_around_it_is_not_that_tool(alice: APIClient) -> None:
    """The schema's slugs are exact (schemathesis found "\te" listed as "e", and a submit's
    " base64-encode" was base64-encode)."""
    assert_problem(alice.get("/api/v1/executions/?tool=%09e"), 400, "invalid_request")
    submit = {"tool": " base64-encode", "params": {"text": "x"}}
    assert_problem(alice.post("/api/v1/executions/", submit, format="json"), 404, "unknown_tool")


def test_a_database_past_its_timeout_is_a_503_problem_and_the_stream_is_untouched(
    alice: APIClient, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = deployment.store.head_position()

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(deployment.store, "append", locked)
    response = encode(alice)
    body = assert_problem(response, 503, "database_unavailable")
    assert int(response["Retry-After"]) > 0 and body["retry_after"] > 0
    assert deployment.store.head_position() == before
