"""The tool registry: finds tool plugins and hands them out by slug.

Plugins come from two places: every module of the ``services.tools.plugins`` package, and every
entry point in the ``magictoolbox.tools`` group of installed packages (third-party tools; an entry
point names a module or a ``BaseTool`` subclass). A plugin that fails to import, or a class whose
metadata is incomplete or clashes with a tool already registered, is reported in
``registry.problems`` and logged, and the rest of the registry still loads.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from services.tools.base import GLOBAL_MAX_UPLOAD, BaseTool, OutputKind

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "magictoolbox.tools"
PLUGINS_PACKAGE = "services.tools.plugins"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9-]{0,49}$")


class UnknownTool(LookupError):
    code = "unknown_tool"


@dataclass(frozen=True, slots=True)
class PluginProblem:
    origin: str  # the module or entry point that was being loaded
    error: str


class ToolRegistry:
    def __init__(self, tools: Iterable[BaseTool] = ()) -> None:
        self._tools: dict[str, BaseTool] = {}
        self.problems: list[PluginProblem] = []
        for tool in tools:
            self.register(tool)

    def __contains__(self, slug: object) -> bool:
        return slug in self._tools

    def __iter__(self) -> Iterator[BaseTool]:
        return iter(sorted(self._tools.values(), key=lambda t: (t.category, t.slug)))

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, slug: str) -> BaseTool:
        try:
            return self._tools[slug]
        except KeyError:
            raise UnknownTool(f"there is no tool {slug!r}") from None

    def categories(self) -> list[str]:
        return sorted({t.category for t in self._tools.values()})

    def register(self, tool: BaseTool | type[BaseTool], origin: str = "") -> bool:
        """Add one tool; a bad or clashing one is recorded as a problem, not raised."""
        try:
            instance = tool() if isinstance(tool, type) else tool
            check_metadata(instance)
            if instance.slug in self._tools:
                other = type(self._tools[instance.slug])
                raise ValueError(f"slug {instance.slug!r} is taken by {other.__qualname__}")
        except Exception as exc:
            self._problem(origin or _name(tool), exc)
            return False
        self._tools[instance.slug] = instance
        return True

    def load_module(self, module: ModuleType, origin: str = "") -> None:
        for tool_class in tool_classes(module):
            self.register(tool_class, origin or module.__name__)

    def _problem(self, origin: str, exc: BaseException) -> None:
        problem = PluginProblem(origin, f"{type(exc).__name__}: {exc}")
        log.error("tool plugin %s skipped: %s", problem.origin, problem.error)
        self.problems.append(problem)


def check_metadata(tool: BaseTool) -> None:
    """Refuse a tool whose metadata would break routing, validation or the UI."""
    for attr in ("slug", "name", "category"):
        if not isinstance(getattr(tool, attr, None), str):
            raise ValueError(f"{type(tool).__qualname__} has no {attr}")
    if not _SLUG.match(tool.slug):
        raise ValueError(f"slug {tool.slug!r} is not lower-case letters, digits and dashes")
    if not _CATEGORY.match(tool.category):
        raise ValueError(f"category {tool.category!r} is not a lower-case word")
    if tool.mode not in ("sync", "async"):
        raise ValueError(f"mode {tool.mode!r} is neither sync nor async")
    if not (inspect.isclass(tool.Params) and issubclass(tool.Params, BaseModel)):
        raise ValueError("Params is not a pydantic model")
    if not isinstance(tool.output, OutputKind):
        raise ValueError(f"output {tool.output!r} is not an OutputKind")
    for ext in tool.accepts:
        if not (ext.startswith(".") and ext == ext.lower()):
            raise ValueError(f"accepted extension {ext!r} must be lower case with a dot")
    if not 0 < tool.max_size <= GLOBAL_MAX_UPLOAD:
        raise ValueError(f"max_size {tool.max_size} is outside 1..{GLOBAL_MAX_UPLOAD}")
    if tool.timeout.total_seconds() <= 0 or tool.max_attempts < 1:
        raise ValueError("timeout and max_attempts must be positive")
    if type(tool).run is BaseTool.run:
        raise ValueError("run() is not implemented")


def tool_classes(module: ModuleType) -> list[type[BaseTool]]:
    """The concrete tools a module defines (not those it merely imports)."""
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(obj, BaseTool)
            and obj is not BaseTool
            and obj.__module__ == module.__name__
            and "slug" in _class_attrs(obj)
        ):
            found.append(obj)
    return found


def discover(package: str = PLUGINS_PACKAGE, group: str | None = ENTRY_POINT_GROUP) -> ToolRegistry:
    """A registry of the plugins package's tools plus the installed entry points'."""
    registry = ToolRegistry()
    try:
        pkg = importlib.import_module(package)
    except Exception as exc:
        registry._problem(package, exc)
        pkg = None
    if pkg is not None:
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            origin = f"{package}.{info.name}"
            try:
                module = importlib.import_module(origin)
            except Exception as exc:
                registry._problem(origin, exc)
                continue
            registry.load_module(module)
    if group:
        for ep in entry_points(group=group):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                loaded = ep.load()
            except Exception as exc:
                registry._problem(origin, exc)
                continue
            if isinstance(loaded, ModuleType):
                registry.load_module(loaded, origin)
            else:
                registry.register(loaded, origin)
    return registry


_default: dict[tuple[str, ...], ToolRegistry] = {}


def default_registry(modules: tuple[str, ...] = ()) -> ToolRegistry:
    """The process-wide registry, discovered on first use, with the tools of ``modules`` (extra
    plugin modules named in the settings) besides the plugins package's and entry points'."""
    if modules not in _default:
        registry = discover()
        for name in modules:
            try:
                registry.load_module(importlib.import_module(name))
            except Exception as exc:
                registry._problem(name, exc)
        _default[modules] = registry
    return _default[modules]


def _class_attrs(cls: type) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is not BaseTool and issubclass(klass, BaseTool):
            attrs.update(vars(klass))
    return attrs


def _name(tool: Any) -> str:
    cls = tool if isinstance(tool, type) else type(tool)
    return f"{cls.__module__}.{cls.__qualname__}"
