"""Running tools in a real browser: a sync tool answers in place; an async tool's upload is
followed live to completed (over SSE, or by polling without EventSource), downloaded, and kept
in the history sidebar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.web.browser.steps import (
    assert_not_reloaded,
    expect,
    history_item,
    run_base64,
    run_rotate,
    status,
)

pytestmark = pytest.mark.timeout(60)


def test_a_sync_tool_shows_its_result_in_place(page: Any) -> None:
    execution = run_base64(page, "hello")

    expect(status(page)).to_have_text("completed")
    expect(page.locator("#result")).to_have_text("aGVsbG8=")
    expect(page.locator("#download-block")).to_be_hidden()  # an inline result: no file
    assert_not_reloaded(page, "base64-encode")
    expect(history_item(page, execution["id"])).to_have_attribute("data-status", "completed")


def test_an_uploaded_image_is_rotated_live_downloaded_and_kept_in_history(
    page: Any, png: Path, tmp_path: Path
) -> None:
    execution = run_rotate(page, png)

    expect(status(page)).to_have_text("completed")
    assert_not_reloaded(page, "image-rotate")
    expect(page.locator("#download-name")).to_have_text("wide-rotated.png")
    with page.expect_download() as download:
        page.click("#download-link")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with Image.open(saved) as image:
        assert (saved.name, image.format, image.size) == ("wide-rotated.png", "PNG", (2000, 4000))

    for shown in ("live", "after a reload"):
        item = history_item(page, execution["id"])
        expect(item, shown).to_have_attribute("data-status", "completed")
        expect(item.locator("[data-field=status]"), shown).to_have_text("completed")
        expect(item.locator("[data-field=link]"), shown).to_have_text("wide.png")
        expect(item.locator("[data-field=download]"), shown).to_be_visible()
        page.reload()


def _refuse_gets(page: Any) -> list[str]:
    """Refuse every GET of the executions API from now on; the URLs the page tried."""
    refused: list[str] = []

    def handle(route: Any) -> None:
        if route.request.method == "GET":
            refused.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(lambda url: "/api/v1/executions/" in url, handle)
    return refused


def test_the_status_arrives_over_the_live_stream_not_by_polling(page: Any, png: Path) -> None:
    """With the SSE stream open the page fetches an execution only when the stream (re)opens
    and every 15 s as a safety net; polling every 2.5 s is the fallback. Every GET is refused
    here, so "completed" can only have come over the stream, and none was even tried."""
    refused = _refuse_gets(page)
    started = time.monotonic()
    execution = run_rotate(page, png)
    assert not execution["finished"], "done before the API answered: nothing to follow live"

    expect(status(page)).to_have_text("completed")
    elapsed = time.monotonic() - started
    assert_not_reloaded(page, "image-rotate")
    assert refused == [], f"the page fetched {refused} in {elapsed:.1f}s instead of listening"


def test_without_event_source_the_page_polls_until_completed(page: Any, png: Path) -> None:
    page.add_init_script("delete window.EventSource")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    execution = run_rotate(page, png, live=False)
    assert not execution["finished"], "done before the API answered: nothing to poll for"
    expect(status(page)).to_have_text("completed")

    assert_not_reloaded(page, "image-rotate")
    assert [url for url in requested if "/live/" in url] == []
    assert any(url.endswith(execution["links"]["self"]) for url in requested), requested
    expect(history_item(page, execution["id"])).to_have_attribute("data-status", "completed")


def test_a_run_finished_before_its_upload_answer_shows_completed(page: Any, png: Path) -> None:
    """A tiny image is rotated in milliseconds: the whole run can be pushed over SSE before the
    browser has the API's answer to the upload (about 1 run in 3 with a 40 x 20 PNG here).
    This makes that order certain: the upload is sent for the page (Playwright cannot replay a
    request's file), and its answer handed over only once the page has heard "completed"."""
    upload = {"name": png.name, "mimeType": "image/png", "buffer": png.read_bytes()}

    def answer_after_the_stream(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        headers = {name: route.request.headers[name] for name in ("accept", "x-csrftoken")}
        sent = page.request.post(
            route.request.url,
            headers=headers,
            multipart={"tool": "image-rotate", "params": "{}", "file": upload},
        )
        assert sent.ok, sent.text()
        expect(history_item(page, sent.json()["id"])).to_have_attribute("data-status", "completed")
        route.fulfill(response=sent)

    page.route("**/api/v1/executions/", answer_after_the_stream)
    execution = run_rotate(page, png)
    assert not execution["finished"], "done before the API answered: no race to lose"

    expect(status(page)).to_have_text("completed", timeout=3_000)  # well before 15 s
