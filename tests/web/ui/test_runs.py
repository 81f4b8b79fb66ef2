"""Running a tool without JavaScript and reading the result: the form posts to the tool page,
which runs it and redirects to the execution page (status, result, timeline, actions)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from services.executions.commands import Fail, Retry, Start
from tests.web.ui.page import Page, attr, has, text

pytestmark = pytest.mark.django_db

EXECUTION_PAGE = re.compile(r"^/executions/([0-9a-f-]{36})/$")


def run(client: Client, tool: str, data: dict, **files) -> str:
    """Submit the tool's form as a browser without JavaScript would; the new execution's id."""
    fields = {f"params-{name}": value for name, value in data.items()}
    response = client.post(f"/tools/{tool}/", {**fields, **files})
    assert response.status_code == 302, response.content.decode()[:2000]
    match = EXECUTION_PAGE.match(response["Location"])
    assert match, response["Location"]
    return match.group(1)


def png(name: str = "photo.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 2), (200, 30, 30)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def timeline_names(page: Page) -> list[str]:
    return [
        text(page.one(within=li, data_field="name")) for li in page.all("li", data_event_id=True)
    ]


def test_a_sync_tool_run_without_javascript_shows_its_result(signed_in: Client, deployment) -> None:
    execution_id = run(signed_in, "hash-text", {"text": "hello", "algorithm": "sha256"})

    page = Page(signed_in.get(f"/executions/{execution_id}/"))

    assert text(page.by_id("status-text")) == "completed"
    assert text(page.by_id("result")) == hashlib.sha256(b"hello").hexdigest()
    assert has(page.by_id("download-block"), "hidden")  # an inline result: nothing to download
    assert has(page.by_id("status-error"), "hidden")
    progress = page.by_id("status-progress")
    assert attr(progress, "aria-valuenow") == "100" and attr(progress, "aria-label") == "Progress"
    assert timeline_names(page) == ["Submitted", "Processing", "Completed"]
    params = text(page.by_id("params"))
    assert "algorithm" in params and "sha256" in params
    assert len(page.all("h1")) == 1


def test_text_is_sent_exactly_as_typed(signed_in: Client, deployment) -> None:
    execution_id = run(signed_in, "base64-encode", {"text": "  two spaces\n", "url_safe": "on"})

    page = Page(signed_in.get(f"/executions/{execution_id}/"))

    assert text(page.by_id("result")) == base64.urlsafe_b64encode(b"  two spaces\n").decode()


def test_a_form_error_is_shown_at_its_field_and_nothing_runs(signed_in: Client, deployment) -> None:
    response = signed_in.post(
        "/tools/image-convert/", {"params-format": "png", "params-quality": 500}
    )

    assert response.status_code == 400
    page = Page(response)
    quality = page.one(data_param="quality")
    assert attr(quality, "aria-invalid") == "true"
    error_id = "id_params-quality_error"
    assert error_id in attr(quality, "aria-describedby").split()
    assert "less than or equal to 100" in text(page.by_id(error_id))
    assert "Choose a file" in text(page.by_id("form-errors"))
    deployment.project()
    assert not Page(signed_in.get("/tools/image-convert/")).all("li", data_execution_id=True)


def test_a_refusal_by_the_tool_is_shown_with_its_code(signed_in: Client, deployment) -> None:
    response = signed_in.post("/tools/base64-encode/", {"params-text": "x" * (49 * 1024)})

    assert response.status_code == 400
    errors = text(Page(response).by_id("form-errors"))
    assert "invalid_params" in errors


def test_an_async_tool_takes_an_upload_and_its_result_is_downloadable(
    signed_in: Client, deployment
) -> None:
    execution_id = run(signed_in, "image-rotate", {"angle": 90}, file=png("cat.png"))

    page = Page(signed_in.get(f"/executions/{execution_id}/"))
    assert text(page.by_id("status-text")) in {"submitted", "uploaded"}
    assert "cat.png" in text(page.by_id("summary"))
    assert timeline_names(page) == ["Submitted", "Uploaded"]
    assert not has(page.one("form", data_action="cancel"), "hidden")

    assert deployment.work(execution_id) == "completed"
    page = Page(signed_in.get(f"/executions/{execution_id}/"))
    assert text(page.by_id("status-text")) == "completed"
    link = page.by_id("download-link")
    assert not has(page.by_id("download-block"), "hidden")
    assert attr(link, "href") == f"/api/v1/executions/{execution_id}/download/"
    assert "cat-rotated.png" in text(link)
    assert timeline_names(page)[-1] == "Completed"


def test_a_pending_retry_counts_down_to_its_next_attempt_not_shown_as_a_failure(
    signed_in: Client, deployment
) -> None:
    execution_id = run(signed_in, "image-rotate", {"angle": 90}, file=png("cat.png"))
    service = deployment.parts.service
    service.handle(UUID(execution_id), Start("worker-1", datetime.now(UTC), timedelta(minutes=5)))
    due = datetime.now(UTC) + timedelta(seconds=90)
    service.handle(
        UUID(execution_id),
        Fail("timeout", "too slow", True, next_attempt_at=due, max_attempts=3),
    )
    deployment.project()

    page = Page(signed_in.get(f"/executions/{execution_id}/"))
    assert text(page.by_id("status-text")) == "retrying"
    assert not has(page.by_id("status-retry"), "hidden")
    note = page.by_id("status-retry-note")
    assert re.fullmatch(r"Retrying in 1 min (29|30) s \(attempt 2 of 3\)", text(note)), text(note)
    assert attr(note, "aria-hidden") == "true"  # the ticking count; screen readers hear the time:
    assert text(page.by_id("status-retry-said")).startswith("Retrying at 20")
    error = page.by_id("status-error")  # the attempt's failure: a warning, not the run's end
    assert "alert-warning" in attr(error, "class").split() and not has(error, "hidden")
    assert text(page.by_id("error-lead")) == "Attempt 1 failed:"
    assert text(page.one("dd", data_summary="status")) == "retrying"

    service.handle(UUID(execution_id), Retry())  # re-queued: waiting for a worker
    deployment.project()
    page = Page(signed_in.get(f"/executions/{execution_id}/"))
    waiting = "Retrying: waiting for a worker (attempt 2 of 3)"
    assert text(page.by_id("status-retry-note")) == text(page.by_id("status-retry-said")) == waiting
    assert not has(page.one("form", data_action="cancel"), "hidden")


def test_a_file_tool_asks_for_its_file(signed_in: Client, deployment) -> None:
    response = signed_in.post("/tools/image-rotate/", {"params-angle": 90})

    assert response.status_code == 400
    assert "Choose a file" in text(Page(response).by_id("form-errors"))


def test_the_history_lists_the_last_ten_runs_newest_first_with_actions(
    signed_in: Client, deployment
) -> None:
    ids = [run(signed_in, "hash-text", {"text": f"run {n}", "algorithm": "md5"}) for n in range(11)]
    run(signed_in, "base64-encode", {"text": "another tool"})
    deployment.project()

    page = Page(signed_in.get("/tools/hash-text/"))

    history = page.by_id("history")
    items = page.all("li", within=history, data_execution_id=True)
    assert [attr(li, "data-execution-id") for li in items] == ids[::-1][:10]
    first = items[0]
    assert text(page.one(within=first, data_field="status")) == "completed"
    assert page.one("a", within=first, href=f"/executions/{ids[-1]}/")
    replay = page.one("form", within=first, data_action="replay")
    assert "Re-run" in text(page.one("button", within=replay))
    assert attr(replay, "action") == f"/executions/{ids[-1]}/replay/"
    delete = page.one("form", within=first, data_action="delete")
    assert "Delete" in text(page.one("button", within=delete)) and attr(delete, "data-confirm")
    assert has(page.one("a", within=first, data_field="download"), "hidden")  # text result
    assert has(page.by_id("history-empty"), "hidden")


def test_rerun_and_delete_work_without_javascript(signed_in: Client, deployment) -> None:
    first = run(signed_in, "hash-text", {"text": "again", "algorithm": "sha1"})

    response = signed_in.post(f"/executions/{first}/replay/")
    assert response.status_code == 302
    second = EXECUTION_PAGE.match(response["Location"]).group(1)
    assert second != first
    page = Page(signed_in.get(f"/executions/{second}/"))
    assert text(page.by_id("result")) == hashlib.sha1(b"again").hexdigest()
    assert page.one("a", href=f"/executions/{first}/")  # "Re-run of"

    response = signed_in.post(f"/executions/{first}/delete/", {"next": f"/executions/{first}/"})
    assert response.status_code == 302 and response["Location"] == "/tools/hash-text/"
    assert signed_in.get(f"/executions/{first}/").status_code == 404  # gone, as in the API
    deployment.project()
    assert f"/executions/{first}/" not in signed_in.get("/tools/hash-text/").content.decode()


def test_an_action_that_does_not_apply_is_explained(signed_in: Client, deployment) -> None:
    execution_id = run(signed_in, "hash-text", {"text": "done", "algorithm": "md5"})

    response = signed_in.post(f"/executions/{execution_id}/cancel/")

    assert response.status_code == 409
    page = Page(response)
    assert text(page.one("h1")) == "That did not work"
    assert page.all("code", class_="problem-code")


def test_another_users_execution_is_not_found(
    client: Client, alice: User, bob: User, deployment
) -> None:
    client.force_login(alice)
    execution_id = run(client, "hash-text", {"text": "alice's secret", "algorithm": "md5"})
    client.force_login(bob)

    response = client.get(f"/executions/{execution_id}/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Hash a text" not in body and execution_id not in body
    assert client.get(f"/executions/{uuid4()}/").status_code == 404
    for action in ("replay", "delete", "cancel", "retry"):
        assert client.post(f"/executions/{execution_id}/{action}/").status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in_for_an_execution(
    client: Client, deployment
) -> None:
    response = client.get(f"/executions/{uuid4()}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/executions/")
