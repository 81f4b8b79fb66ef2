"""axe-core finds no WCAG 2.1 A/AA violation on the tool list, a tool page and an execution
page, each checked as a user sees it: the tool page after a run (status panel and history
filled), the execution page with its whole timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.steps import expect, history_item, run_base64, run_rotate, status

pytestmark = pytest.mark.timeout(60)

WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def assert_accessible(axe: Any, page: Any) -> None:
    violations = axe.run(page, options=WCAG_21_AA).response["violations"]
    report = [
        f"{v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(
            f"  {node['target']}: " + node["failureSummary"].replace("\n", "\n    ")
            for node in v["nodes"]
        )
        for v in violations
    ]
    assert not violations, f"axe found on {page.url}:\n" + "\n".join(report)


def test_the_tool_list(axe: Any, page: Any) -> None:
    page.goto("/")
    assert_accessible(axe, page)


def test_a_tool_page_after_an_inline_result(axe: Any, page: Any) -> None:
    run_base64(page, "hello")
    expect(page.locator("#result")).to_have_text("aGVsbG8=")
    assert_accessible(axe, page)


def test_a_tool_page_after_a_file_result(axe: Any, page: Any, png: Path) -> None:
    execution = run_rotate(page, png)
    expect(status(page)).to_have_text("completed")
    expect(history_item(page, execution["id"])).to_have_attribute("data-status", "completed")
    assert_accessible(axe, page)


def test_an_execution_page(axe: Any, page: Any, png: Path) -> None:
    execution = run_rotate(page, png)
    expect(status(page)).to_have_text("completed")
    page.goto(execution["links"]["page"])
    expect(page.locator("#timeline > li").last).to_contain_text("Completed")
    page.locator("#timeline summary").first.click()  # an open event's JSON is checked too
    assert_accessible(axe, page)
