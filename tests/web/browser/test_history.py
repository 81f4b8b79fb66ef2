"""The history sidebar's buttons, which call the API in place: Re-run starts a new run at the
top of the list; Delete (once confirmed) removes a run's files and keeps its history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.steps import (
    assert_not_reloaded,
    expect,
    history_item,
    open_tool,
    run_rotate,
    status,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def finished(page: Any, png: Path) -> dict[str, Any]:
    """A completed image-rotate run, with the tool page freshly opened."""
    execution = run_rotate(page, png)
    expect(status(page)).to_have_text("completed")
    open_tool(page, "image-rotate")
    expect(history_item(page, execution["id"])).to_have_attribute("data-status", "completed")
    return execution


def test_re_run_adds_a_new_run_at_the_top(page: Any, finished: dict[str, Any]) -> None:
    with page.expect_response(lambda r: r.url.endswith("/replay/")) as answer:
        history_item(page, finished["id"]).get_by_role("button", name="Re-run").click()
    rerun = answer.value.json()
    assert rerun["id"] != finished["id"] and rerun["replay_of"] == finished["id"]

    first, second = page.locator("#history > li").nth(0), page.locator("#history > li").nth(1)
    expect(first).to_have_attribute("data-execution-id", rerun["id"])
    expect(second).to_have_attribute("data-execution-id", finished["id"])
    expect(first).to_have_attribute("data-status", "completed")
    expect(status(page)).to_have_text("completed")  # the panel follows the new run
    expect(page.locator("#execution-link")).to_have_attribute("href", rerun["links"]["page"])
    assert_not_reloaded(page, "image-rotate")


def test_delete_asks_first_then_removes_the_run_from_the_history(
    page: Any, finished: dict[str, Any]
) -> None:
    item = history_item(page, finished["id"])
    delete = item.get_by_role("button", name="Delete")
    questions: list[str] = []
    deletes: list[str] = []
    page.on("request", lambda r: deletes.append(r.url) if r.method == "DELETE" else None)

    def answer(yes: bool) -> None:
        def reply(dialog: Any) -> None:
            questions.append(dialog.message)
            if yes:
                dialog.accept()
            else:
                dialog.dismiss()

        page.once("dialog", reply)

    answer(False)
    delete.click()
    expect(item).to_have_attribute("data-status", "completed")
    assert deletes == [], "deleted although the question was dismissed"

    answer(True)
    delete.click()
    question = (
        "Delete this run? Its files go now and it leaves your history; the audit trail keeps "
        "its events."
    )
    assert questions == [question] * 2
    for shown in ("live", "after a reload"):
        expect(item, shown).to_have_count(0)
        if shown == "live":
            assert_not_reloaded(page, "image-rotate")
            page.reload()
