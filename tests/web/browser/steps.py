"""What a user does in the browser, as steps the tests share: sign up, open a tool, run it, and
check that the page was never reloaded on the way."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the `browser` fixture skips (fails under CI=true) and says why
    Locator = Page = expect = None  # type: ignore[assignment,misc]

LIVE_ME = "/live/me/"


def sign_up(page: Page) -> str:
    """Create a fresh account through the sign-up form, which signs it in; its username."""
    username = f"user-{uuid.uuid4().hex[:10]}"
    password = f"Pw-{uuid.uuid4().hex}"
    page.goto("/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    with page.expect_navigation():
        page.click("#signup-form button[type=submit]")
    expect(page.locator("#logout-button")).to_be_visible()
    return username


def open_tool(page: Page, slug: str, *, live: bool = True) -> None:
    """Open a tool's page and mark its window (see ``assert_not_reloaded``). With ``live``, wait
    until the live stream answered, so a run starts with the page already listening."""
    if live:
        with page.expect_response(lambda r: r.url.endswith(LIVE_ME)) as stream:
            page.goto(f"/tools/{slug}/")
        assert stream.value.ok, stream.value.status
    else:
        page.goto(f"/tools/{slug}/")
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page, slug: str) -> None:
    """Still on the tool's page, in the same window: no navigation, no reload."""
    assert page.url.endswith(f"/tools/{slug}/"), f"the page navigated to {page.url}"
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def submit_run(page: Page) -> dict[str, Any]:
    """Press Run; the execution the API answered with (the script posts the form to the API)."""
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/executions/") and r.request.method == "POST"
    ) as answer:
        page.click("#run-button")
    response = answer.value
    assert response.ok, f"{response.status}: {response.text()}"
    return response.json()


def run_base64(page: Page, text: str = "hello") -> dict[str, Any]:
    open_tool(page, "base64-encode")
    page.fill("[data-param=text]", text)
    return submit_run(page)


def run_rotate(page: Page, image: Path, *, live: bool = True) -> dict[str, Any]:
    """Upload ``image`` to image-rotate (the angle left at its default, 90) and press Run."""
    open_tool(page, "image-rotate", live=live)
    page.set_input_files("#id_file", image)
    return submit_run(page)


def status(page: Page) -> Locator:
    return page.locator("#status-text")


def history_item(page: Page, execution_id: str) -> Locator:
    return page.locator(f"#history li[data-execution-id='{execution_id}']")
