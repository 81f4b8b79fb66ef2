"""The tool registry: it finds the shipped plugins, and a broken plugin never takes it down.

Broken plugins are real modules written to a temporary package on disk, and third-party tools
come from a real installed distribution (a ``.dist-info`` directory on ``sys.path``), so
discovery goes through the same ``pkgutil`` and ``importlib.metadata`` paths as in production.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.tools.registry import ENTRY_POINT_GROUP, PluginProblem, UnknownTool, discover

SHIPPED = {
    "base64-encode",
    "base64-decode",
    "hash-text",
    "hash-file",
    "json-format",
    "json-validate",
    "image-rotate",
    "image-resize",
    "image-convert",
    "pdf-merge",
    "pdf-split",
    "pdf-rotate",
    "video-rotate",
}
DESCRIBE_KEYS = {
    "slug",
    "name",
    "category",
    "description",
    "version",
    "mode",
    "params_schema",
    "accepts",
    "max_size",
    "timeout_s",
    "limits",
    "max_attempts",
    "output",
}

GOOD_TOOL = """
from services.tools.base import BaseTool, OutputKind

class {cls}(BaseTool):
    slug = "{slug}"
    name = "A tool that works"
    category = "data"
    output = OutputKind.TEXT

    def run(self, ctx):
        ctx.output.text("ok")
"""


@pytest.fixture
def fresh_modules(tmp_path: Path) -> Iterator[None]:
    """Forget the modules a test imported from its tmp dir, so they never outlive the test."""
    yield
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if origin.startswith(str(tmp_path)):
            del sys.modules[name]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_package(root: Path, name: str, modules: dict[str, str]) -> None:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Temporary tool plugins for a test."""\n')
    for module, source in modules.items():
        (pkg / f"{module}.py").write_text(textwrap.dedent(source))


def by_origin(problems: list[PluginProblem]) -> dict[str, str]:
    origins = [p.origin for p in problems]
    assert len(origins) == len(set(origins)), problems
    return {p.origin: p.error for p in problems}


# -- the shipped plugins --------------------------------------------------------------------


def test_discover_finds_every_shipped_plugin_without_problems() -> None:
    registry = discover()

    assert registry.problems == []
    assert {tool.slug for tool in registry} >= SHIPPED
    assert {"data", "encoders", "image", "pdf", "video"} <= set(registry.categories())
    for tool in registry:
        described = tool.describe()
        assert set(described) == DESCRIBE_KEYS, tool.slug
        assert described["slug"] == tool.slug
        assert registry.get(tool.slug) is tool
        schema = described["params_schema"]
        assert schema["type"] == "object", tool.slug
        assert isinstance(schema["properties"], dict), tool.slug
        json.dumps(described)  # the API serves it as JSON as it is


def test_heavy_tools_run_asynchronously_and_small_ones_inline() -> None:
    registry = discover()

    modes = {slug: registry.get(slug).describe()["mode"] for slug in SHIPPED}
    assert {modes[s] for s in ("image-rotate", "pdf-merge", "video-rotate")} == {"async"}
    assert {modes[s] for s in ("base64-encode", "hash-text", "json-format")} == {"sync"}


def test_an_unknown_slug_is_an_unknown_tool_error() -> None:
    registry = discover()

    with pytest.raises(UnknownTool, match="nope") as caught:
        registry.get("nope")
    assert caught.value.code == "unknown_tool"
    assert "nope" not in registry


# -- broken plugins -------------------------------------------------------------------------


def test_broken_plugins_are_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_modules: None, caplog
) -> None:
    pkg = unique("broken_plugins")
    write_package(
        tmp_path,
        pkg,
        {
            "good": GOOD_TOOL.format(cls="Good", slug="good-tool"),
            "import_fails": """
                raise ImportError("needs the frobnicate library")
            """,
            "syntax_error": """
                def broken(:
                    pass
            """,
            "no_category": """
                from services.tools.base import BaseTool

                class NoCategory(BaseTool):
                    slug = "no-category"
                    name = "No category"

                    def run(self, ctx):
                        ctx.output.text("ok")
            """,
            "bad_slug": """
                from services.tools.base import BaseTool

                class BadSlug(BaseTool):
                    slug = "Bad Slug"
                    name = "Bad slug"
                    category = "data"

                    def run(self, ctx):
                        ctx.output.text("ok")
            """,
            "dup_a": GOOD_TOOL.format(cls="FirstDup", slug="dup"),
            "dup_b": GOOD_TOOL.format(cls="SecondDup", slug="dup"),
            "no_run": """
                from services.tools.base import BaseTool

                class NoRun(BaseTool):
                    slug = "no-run"
                    name = "Forgot run"
                    category = "data"
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = discover(package=pkg, group=None)

    assert sorted(tool.slug for tool in registry) == ["dup", "good-tool"]
    assert type(registry.get("dup")).__name__ == "FirstDup"  # the first one found keeps it
    assert registry.get("good-tool").describe()["category"] == "data"
    problems = by_origin(registry.problems)
    assert set(problems) == {
        f"{pkg}.{m}"
        for m in ("import_fails", "syntax_error", "no_category", "bad_slug", "dup_b", "no_run")
    }
    assert problems[f"{pkg}.import_fails"] == "ImportError: needs the frobnicate library"
    assert problems[f"{pkg}.syntax_error"].startswith("SyntaxError: ")
    assert "syntax_error.py" in problems[f"{pkg}.syntax_error"]
    assert problems[f"{pkg}.no_category"] == "ValueError: NoCategory has no category"
    assert "'Bad Slug'" in problems[f"{pkg}.bad_slug"]
    assert "'dup' is taken by FirstDup" in problems[f"{pkg}.dup_b"]
    assert "run() is not implemented" in problems[f"{pkg}.no_run"]
    # Each one is logged for whoever runs the server, too.
    assert sum("tool plugin" in r.getMessage() for r in caplog.records) == len(problems)


def test_a_plugins_package_that_does_not_import_is_a_problem(fresh_modules: None) -> None:
    pkg = unique("no_such_plugins")

    registry = discover(package=pkg, group=None)

    assert len(registry) == 0
    [problem] = registry.problems
    assert problem.origin == pkg
    assert problem.error.startswith("ModuleNotFoundError: ")


# -- third-party entry points ---------------------------------------------------------------


def install_distribution(root: Path, dist: str, entry_points: str) -> None:
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_entry_points_add_third_party_tools_and_report_broken_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_modules: None
) -> None:
    pkg = unique("own_plugins")
    write_package(tmp_path, pkg, {"good": GOOD_TOOL.format(cls="Good", slug="good-tool")})
    mod = unique("thirdparty_mod")
    missing = unique("thirdparty_missing")
    (tmp_path / f"{mod}.py").write_text(
        GOOD_TOOL.format(cls="SomeTool", slug="some-tool")
        + GOOD_TOOL.format(cls="OtherTool", slug="other-tool")
    )
    dist = unique("magictoolbox_test_thirdparty")
    install_distribution(
        tmp_path,
        dist,
        f"""
        [{ENTRY_POINT_GROUP}]
        thirdparty_tools = {mod}
        one = {mod}:SomeTool
        broken = {missing}
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()

    registry = discover(package=pkg, group=ENTRY_POINT_GROUP)

    assert {tool.slug for tool in registry} == {"good-tool", "some-tool", "other-tool"}
    assert type(registry.get("some-tool")).__module__ == mod
    problems = by_origin(registry.problems)
    assert problems[f"entry point broken = {missing}"] == (
        f"ModuleNotFoundError: No module named '{missing}'"
    )
    # SomeTool arrives twice (with its module, then by name): the second is a clash, not a crash.
    assert problems[f"entry point one = {mod}:SomeTool"] == (
        "ValueError: slug 'some-tool' is taken by SomeTool"
    )
    assert len(problems) == 2


def test_without_a_group_entry_points_are_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_modules: None
) -> None:
    pkg = unique("own_plugins")
    write_package(tmp_path, pkg, {"good": GOOD_TOOL.format(cls="Good", slug="good-tool")})
    install_distribution(
        tmp_path, unique("magictoolbox_test_ignored"), f"[{ENTRY_POINT_GROUP}]\nx = nowhere\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = discover(package=pkg, group=None)

    assert [tool.slug for tool in registry] == ["good-tool"]
    assert registry.problems == []
