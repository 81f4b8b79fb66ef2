"""axe-core finds no WCAG 2.1 A/AA violation on the Webhooks pages, checked as a user sees them:
the list right after adding an endpoint (its secret shown) and disabling it (the alert), the
endpoint's delivery log, and the delete confirmation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.browser.steps import expect
from tests.web.browser.test_accessibility import assert_accessible

pytestmark = pytest.mark.timeout(60)

# An IP literal: no DNS. The endpoint is disabled at once and only wants a tool no browser test
# runs, so nothing is ever sent to it.
URL = "https://93.184.215.14/hooks/axe"


def test_the_webhook_pages(axe: Any, page: Any) -> None:
    page.goto("/webhooks/")
    assert_accessible(axe, page)

    page.fill("#id_url", URL)
    page.fill("#id_description", "accessibility check")
    page.check("input[name=event_types][value='MagicToolbox.Execution.Completed']")
    page.select_option("#id_tools", ["pdf-merge"])
    with page.expect_navigation():
        page.click("#add-webhook")
    expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
    assert_accessible(axe, page)
    card = page.locator("[data-endpoint-id]").filter(has_text=URL)
    with page.expect_navigation():
        card.locator("button[data-action=disable]").click()
    expect(card.locator("[data-field=disabled-reason]")).to_be_visible()
    assert_accessible(axe, page)

    with page.expect_navigation():
        card.get_by_role("link", name="Delivery log").click()
    expect(page.locator("#no-messages")).to_be_visible()
    assert_accessible(axe, page)

    with page.expect_navigation():
        page.locator("a[data-action=delete]").click()
    expect(page.locator("#confirm-delete")).to_be_visible()
    assert_accessible(axe, page)
    with page.expect_navigation():
        page.click("#confirm-delete")
    expect(page.locator(f"[data-endpoint-id]:has-text('{URL}')")).to_have_count(0)
