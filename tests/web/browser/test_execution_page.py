"""An execution's own page: its event timeline, in order, and nobody else's eyes on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.steps import expect, run_rotate, sign_up, status

pytestmark = pytest.mark.timeout(60)


def test_the_execution_page_shows_the_timeline_in_order(page: Any, png: Path) -> None:
    execution = run_rotate(page, png)
    expect(status(page)).to_have_text("completed")
    with page.expect_navigation():
        page.click("#execution-link")
    assert page.url.endswith(execution["links"]["page"])

    names = page.locator("#timeline > li [data-field=name]")
    expect(names.last).to_have_text("Completed")
    lifecycle = [n for n in names.all_inner_texts() if n != "Progress"]
    assert lifecycle == ["Submitted", "Uploaded", "Processing", "Completed"]
    expect(page.locator("#status-text")).to_have_text("completed")
    expect(page.locator("#download-link")).to_be_visible()


def test_another_users_execution_is_not_found(page: Any, png: Path, new_page: Any) -> None:
    execution = run_rotate(page, png)
    stranger = new_page()
    sign_up(stranger)

    response = stranger.goto(execution["links"]["page"])
    assert response is not None and response.status == 404
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(stranger.locator("body")).not_to_contain_text(execution["id"])
    for url in (execution["links"]["self"], f"{execution['links']['self']}download/"):
        assert stranger.request.get(url).status == 404, url
