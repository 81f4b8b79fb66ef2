"""The Content-Security-Policy holds on every page and the UI still works under it: Chromium
reports no violation (a ``securitypolicyviolation`` event, or its "Refused to …" console error)
on the login and sign-up forms (and the admin's), the tool list, a tool page through a live run,
an execution page, the Webhooks pages, the account page, a 404 and Swagger UI at /api/docs/, and
each of them does what it is for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.steps import (
    assert_not_reloaded,
    expect,
    history_item,
    run_base64,
    run_rotate,
    status,
)

pytestmark = pytest.mark.timeout(90)

# Runs before any script of each document the page opens (an init script is not subject to the
# page's CSP); what it collects is read back after each page.
LISTEN = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile || event.documentURI}:${event.lineNumber})`
  );
});
"""
# An IP literal: no DNS; disabled before anything could be sent to it.
HOOK_URL = "https://93.184.215.14/hooks/csp"
# A progress bar as wide as its track (its width comes from a class or the script: no style).
# The bar's width animates (a CSS transition): full once it has run.
FULL = """() => {
    const bar = document.querySelector("#status-progress .progress-bar");
    return bar.getBoundingClientRect().width === bar.parentElement.getBoundingClientRect().width;
}"""


class Watched:
    """A page whose CSP violations are collected, page after page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(LISTEN)
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.console.append(message.text)

    def goto(self, path: str) -> Any:
        response = self.page.goto(path)
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, (path, policy)
        return response

    def assert_clean(self, where: str) -> None:
        seen = self.page.evaluate("window.__cspViolations || []") + self.console
        assert not seen, f"CSP violations on {where} ({self.page.url}):\n" + "\n".join(seen)
        self.console.clear()


@pytest.fixture
def watched(page: Any) -> Watched:
    return Watched(page)


def test_signed_out_forms(new_page: Callable[..., Any]) -> None:
    watched = Watched(new_page())
    watched.goto("/accounts/login/")
    expect(watched.page.locator("#id_username")).to_be_visible()
    watched.assert_clean("the login form")
    watched.goto("/accounts/signup/")
    expect(watched.page.locator("#id_password2")).to_be_visible()
    watched.assert_clean("the sign-up form")
    watched.goto("/admin/login/")  # the operator's console is Django's own pages
    expect(watched.page.locator("#id_password")).to_be_visible()
    watched.assert_clean("the admin's login")


def test_the_tool_list_filters(watched: Watched) -> None:
    page = watched.page
    watched.goto("/")
    page.fill("#tool-search", "base64")  # filtered by the script as one types
    expect(page.locator("li[data-tool=base64-encode]")).to_be_visible()
    expect(page.locator("li[data-tool=image-rotate]")).to_be_hidden()
    watched.assert_clean("the tool list")


def test_a_tool_page_runs_and_follows_a_run_live(watched: Watched, png: Path) -> None:
    page = watched.page
    run_base64(page, "hello")
    expect(page.locator("#result")).to_have_text("aGVsbG8=")
    watched.assert_clean("a sync tool's page")

    execution = run_rotate(page, png)
    expect(status(page)).to_have_text("completed")  # over the live stream, in place
    assert_not_reloaded(page, "image-rotate")
    expect(history_item(page, execution["id"])).to_have_attribute("data-status", "completed")
    expect(page.locator("#status-progress")).to_have_attribute("aria-valuenow", "100")
    page.wait_for_function(FULL, timeout=5000)  # else: a completed run's bar is not full
    watched.assert_clean("an async tool's page through a run")

    watched.goto(execution["links"]["page"])
    expect(page.locator("#timeline > li").last).to_contain_text("Completed")
    page.locator("#timeline summary").first.click()
    assert page.locator("#status-progress .progress-bar").evaluate(FULL), (
        "the progress bar as rendered (no script yet) is not full"
    )
    watched.assert_clean("an execution page")


def test_the_webhook_pages(watched: Watched) -> None:
    page = watched.page
    watched.goto("/webhooks/")
    watched.assert_clean("the webhook list")
    page.fill("#id_url", HOOK_URL)
    page.check("input[name=event_types][value='MagicToolbox.Execution.Completed']")
    page.select_option("#id_tools", ["pdf-merge"])
    with page.expect_navigation():
        page.click("#add-webhook")
    expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
    watched.assert_clean("the webhook list with a new secret")
    card = page.locator("[data-endpoint-id]").filter(has_text=HOOK_URL)
    with page.expect_navigation():
        card.locator("button[data-action=disable]").click()
    with page.expect_navigation():
        card.get_by_role("link", name="Delivery log").click()
    expect(page.locator("#no-messages")).to_be_visible()
    watched.assert_clean("an endpoint's delivery log")
    with page.expect_navigation():
        page.locator("a[data-action=delete]").click()
    page.on("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#confirm-delete")
    expect(page.locator(f"[data-endpoint-id]:has-text('{HOOK_URL}')")).to_have_count(0)
    watched.assert_clean("the delete confirmation and the list after it")


def test_the_account_page_and_a_404(watched: Watched) -> None:
    watched.goto("/accounts/")
    expect(watched.page.locator("main h1")).to_be_visible()
    watched.assert_clean("the account page")
    watched.goto("/no-such-page/")
    expect(watched.page.locator("main h1")).to_have_text("Not found")
    watched.assert_clean("a 404")


def test_swagger_ui_renders_the_api(watched: Watched) -> None:
    page = watched.page
    watched.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("MagicToolbox API")
    expect(page.locator(".opblock").first).to_be_visible()
    watched.assert_clean("Swagger UI")
