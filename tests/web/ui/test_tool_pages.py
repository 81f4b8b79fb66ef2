"""The tool list and a tool page as a visitor sees them: categories, search, the form."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pytest
from django.test import Client

import web.ui
from tests.web.ui.page import Page, attr, has, text
from web.parts import parts

pytestmark = pytest.mark.django_db
# A static `import … from "./x.js"` (or `import "./x.js"`) between the UI's modules.
IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\sfrom\s+)?["'](\.{1,2}/[^"']+)["']""", re.M)


def visible_tools(page: Page) -> set[str]:
    sections = [s for s in page.all("section", data_category=True) if not has(s, "hidden")]
    return {
        attr(item, "data-tool")
        for section in sections
        for item in page.all("li", within=section, data_tool=True)
        if not has(item, "hidden")
    }


def test_the_tool_list_shows_every_tool_under_its_category_heading(client: Client) -> None:
    page = Page(client.get("/"))

    headings = [text(h) for h in page.all("h2")]
    assert headings == ["Data", "Encoders", "Image", "PDF", "Video"]
    registry = parts().registry
    assert visible_tools(page) == {tool.slug for tool in registry}
    for tool in registry:
        section = page.one("section", data_category=tool.category)
        link = page.one("a", within=section, href=f"/tools/{tool.slug}/")
        assert text(link) == tool.name
    assert "13 tools." in text(page.by_id("tool-count"))


def test_the_search_box_is_labelled_and_filters_without_javascript(client: Client) -> None:
    page = Page(client.get("/", {"q": "rotate"}))

    search = page.by_id("tool-search")
    assert attr(search, "type") == "search"
    assert attr(search, "value") == "rotate"
    assert page.label_for(search) == "Search tools"
    assert visible_tools(page) == {"image-rotate", "pdf-rotate", "video-rotate"}
    assert "3 of 13 tools match" in text(page.by_id("tool-count"))
    hidden_sections = {attr(s, "data-category") for s in page.all("section", hidden=True)}
    assert hidden_sections == {"data", "encoders"}


def test_a_search_matches_descriptions_and_says_when_nothing_matches(client: Client) -> None:
    assert visible_tools(Page(client.get("/", {"q": "BLAKE2b"}))) == {"hash-file", "hash-text"}

    page = Page(client.get("/", {"q": "no such tool anywhere"}))
    assert visible_tools(page) == set()
    assert not has(page.by_id("no-tools"), "hidden")


def test_a_page_has_one_h1_landmarks_a_skip_link_and_only_local_assets(client: Client) -> None:
    response = client.get("/")
    page = Page(response)

    assert attr(page.one("html"), "lang") == "en"
    assert len(page.all("h1")) == 1
    assert page.one("main", id="main")
    assert page.one("nav", aria_label="Main")
    assert page.one("a", href="#main")
    sources = [attr(s, "src") for s in page.all("script", src=True)]
    sheets = [attr(link, "href") for link in page.all("link", rel="stylesheet")]
    assert sources and sheets
    for url in sources + sheets:
        assert url.startswith("/static/"), url
    assert "bootstrap" in " ".join(sheets) and "/static/ui/app.css" in sheets
    # The UI script is one ES module entry (modules are deferred by default).
    assert [attr(s, "src") for s in page.all("script", type="module")] == ["/static/ui/main.js"]
    assert not page.all("script", src=False, type=False)  # no inline scripts


def test_the_static_files_are_served_by_the_project(client: Client) -> None:
    for path in (
        "/static/ui/main.js",
        "/static/ui/app.css",
        "/static/bootstrap/css/bootstrap.min.css",
        "/static/bootstrap/js/bootstrap.bundle.min.js",
        "/static/ui/favicon.svg",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content if response.streaming else [response.content])


def test_the_script_modules_are_served_as_javascript_and_their_imports_resolve(
    client: Client,
) -> None:
    """A browser refuses a module script served with another MIME type, and one missing import
    stops the whole module graph: every module under static/ui is served as JavaScript, and
    every relative import names one of them."""
    root = Path(web.ui.__file__).parent / "static" / "ui"
    modules = {p.relative_to(root).as_posix() for p in root.rglob("*.js")}
    assert "main.js" in modules and "app.js" not in modules
    for module in sorted(modules):
        response = client.get(f"/static/ui/{module}")
        assert response.status_code == 200, module
        body = b"".join(response.streaming_content if response.streaming else [response.content])
        kind = response["Content-Type"].split(";")[0].strip()
        assert kind in {"text/javascript", "application/javascript"}, (module, kind)
        for target in IMPORT.findall(body.decode()):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(module), target))
            assert resolved in modules, f"{module} imports {target}: no such module"


def test_an_anonymous_visitor_sees_the_tool_and_is_asked_to_log_in_to_run_it(
    client: Client,
) -> None:
    page = Page(client.get("/tools/base64-encode/"))

    assert text(page.one("h1")) == "Base64 encode"
    assert "Encode a text (UTF-8) as base64" in page.text()
    prompt = page.by_id("login-to-run")
    login = page.one("a", within=prompt, href="/accounts/login/?next=/tools/base64-encode/")
    assert text(login) == "Log in to run this tool"
    assert not page.all("form", id="run-form")

    response = client.post("/tools/base64-encode/", {"params-text": "hello"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_an_unknown_tool_is_not_found(client: Client) -> None:
    response = client.get("/tools/no-such-tool/")

    assert response.status_code == 404
    assert "Not found" in text(Page(response).one("h1"))


def control(page: Page, name: str):
    return page.one(data_param=name)


def test_the_form_has_a_labelled_control_per_parameter_with_its_default(
    signed_in: Client, deployment
) -> None:
    page = Page(signed_in.get("/tools/image-convert/"))

    form = page.by_id("run-form")
    assert attr(form, "method") == "post" and attr(form, "enctype") == "multipart/form-data"
    fmt = control(page, "format")
    assert fmt.name == "select" and page.label_for(fmt) == "Format"
    options = page.all("option", within=fmt)
    assert [attr(o, "value") for o in options] == ["png", "jpeg", "webp", "gif", "bmp", "tiff"]
    assert [attr(o, "value") for o in options if has(o, "selected")] == ["png"]

    quality = control(page, "quality")
    assert attr(quality, "type") == "number"
    assert (attr(quality, "min"), attr(quality, "max"), attr(quality, "step")) == ("1", "100", "1")
    assert attr(quality, "value") == "90"
    assert page.label_for(quality) == "Quality"
    help_id = attr(quality, "aria-describedby")
    assert "For JPEG and WebP." in text(page.by_id(help_id))
    assert "From 1 to 100." in text(page.by_id(help_id))


def test_text_booleans_and_enums_of_a_text_tool(signed_in: Client, deployment) -> None:
    page = Page(signed_in.get("/tools/hash-text/"))

    text_control = control(page, "text")
    assert text_control.name == "textarea"
    assert has(text_control, "required")
    assert page.label_for(text_control).startswith("Text")
    algorithm = control(page, "algorithm")
    assert [attr(o, "value") for o in page.all("option", within=algorithm, selected=True)] == [
        "sha256"
    ]
    assert not page.all("input", type="file")

    page = Page(signed_in.get("/tools/base64-encode/"))
    url_safe = control(page, "url_safe")
    assert attr(url_safe, "type") == "checkbox" and not has(url_safe, "checked")
    assert page.label_for(url_safe) == "Url safe"
    assert "Use - and _ instead of + and /." in text(page.by_id(attr(url_safe, "aria-describedby")))


def test_optional_and_json_parameters(signed_in: Client, deployment) -> None:
    page = Page(signed_in.get("/tools/image-resize/"))
    width = control(page, "width")
    assert attr(width, "type") == "number" and not has(width, "required")
    assert attr(width, "value") is None
    assert attr(control(page, "keep_aspect"), "checked") == ""

    page = Page(signed_in.get("/tools/json-validate/"))
    schema = control(page, "schema")
    assert schema.name == "textarea" and attr(schema, "data-type") == "json"
    assert "As JSON." in text(page.by_id(attr(schema, "aria-describedby")))

    page = Page(signed_in.get("/tools/pdf-rotate/"))
    angle = control(page, "angle")
    assert angle.name == "select"
    assert [attr(o, "value") for o in page.all("option", within=angle)] == ["90", "180", "270"]
    pages = control(page, "pages")
    assert pages.name == "input" and attr(pages, "type") == "text"


def test_the_file_input_lists_what_the_tool_accepts_and_its_size_limit(
    signed_in: Client, deployment
) -> None:
    page = Page(signed_in.get("/tools/image-rotate/"))

    file_input = page.one("input", type="file")
    assert attr(file_input, "name") == "file" and has(file_input, "required")
    assert attr(file_input, "accept") == ".png,.jpg,.jpeg,.webp,.gif,.bmp,.tiff"
    assert page.label_for(file_input).startswith("File")
    help_text = text(page.by_id(attr(file_input, "aria-describedby")))
    assert ".png, .jpg" in help_text and "50.0\xa0MB" in help_text


def test_the_tool_page_is_two_columns_with_status_panel_and_history(
    signed_in: Client, deployment
) -> None:
    page = Page(signed_in.get("/tools/hash-text/"))

    row = page.one("div", id="tool-app", class_="row")
    main_column = page.one("div", within=row, class_="col-lg-8")
    side_column = page.one("div", within=row, class_="col-lg-4")
    assert page.all("form", within=main_column, id="run-form")
    panel = page.one(within=main_column, id="status-panel")
    assert attr(panel, "role") == "status" and attr(panel, "aria-live") == "polite"
    assert page.all("ul", within=side_column, id="history")
    assert "No runs of this tool yet." in text(page.by_id("history-empty"))
    headings = [h.name for h in page.all() if h.name in {"h1", "h2", "h3", "h4"}]
    assert headings[0] == "h1" and headings.count("h1") == 1
