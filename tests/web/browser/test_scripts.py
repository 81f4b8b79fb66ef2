"""The UI script loads as ES modules on every page: the tool list, a tool page and an execution
page show no console error and no uncaught exception, and every module under static/ui reaches
the browser as JavaScript (a module with another MIME type, or a missing one, stops them all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import web.ui
from tests.web.browser.steps import expect, run_base64, status

pytestmark = pytest.mark.timeout(60)

STATIC_UI = Path(web.ui.__file__).parent / "static" / "ui"
JAVASCRIPT = {"text/javascript", "application/javascript"}


def test_every_page_loads_the_modules_without_errors(page: Any) -> None:
    problems: list[str] = []
    served: dict[str, str] = {}  # module path under /static/ui/ → its content type
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))

    def console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def response(answer: Any) -> None:
        path = answer.url.split("/static/ui/", 1)[-1] if "/static/ui/" in answer.url else None
        if path is None:
            return
        if not answer.ok:
            problems.append(f"{answer.status} {answer.url}")
        elif path.endswith(".js"):
            served[path] = answer.headers.get("content-type", "").split(";")[0].strip()

    page.on("console", console)
    page.on("response", response)
    # Only scripts: a navigation may abort other requests (the favicon's, say) on the way.
    page.on(
        "requestfailed",
        lambda request: (
            request.resource_type == "script"
            and problems.append(f"failed {request.url}: {request.failure}")
        ),
    )

    page.goto("/?q=base64")
    page.fill("#tool-search", "zzz-no-such-tool")  # the filter runs in the page: the script ran
    expect(page.locator("#no-tools")).to_be_visible()

    execution = run_base64(page, "hello")
    expect(status(page)).to_have_text("completed")
    expect(page.locator("[data-copy='#result']")).to_be_visible()  # .js-only, shown by the script

    with page.expect_navigation():
        page.click("#execution-link")
    assert page.url.endswith(execution["links"]["page"])
    expect(page.locator("#timeline > li [data-field=name]").last).to_have_text("Completed")
    expect(page.locator("[data-copy='#result']")).to_be_visible()

    modules = {p.relative_to(STATIC_UI).as_posix() for p in STATIC_UI.rglob("*.js")}
    assert problems == []
    assert set(served) == modules, f"not loaded: {modules - set(served)}"
    assert {path: kind for path, kind in served.items() if kind not in JAVASCRIPT} == {}
