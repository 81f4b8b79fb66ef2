"""Which settings the code reads from the environment, found by reading its source (AST).

A read is ``os.environ.get("X")``, ``os.environ["X"]``, ``"X" in os.environ``, ``os.getenv("X")``,
the same on a name bound to (a copy of) the environment (``env = dict(os.environ)``, then
``env.get("X")``), or a call of one of ``ENV_HELPERS`` (``_env_bool("X", …)``). A read whose
key is not a literal cannot be checked, so it is reported as such, except inside the helpers,
whose callers are read instead. ``os.environ.setdefault`` is not a read: the code supplies the
value. Timer schedules and other binding expressions (``"%X%"``) of the Functions app are app
settings too: ``binding_settings``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ENV_HELPERS = frozenset({"_env_bool", "_env_list"})  # web/settings.py: (name, default) readers
READ_METHODS = frozenset({"get", "pop"})
BINDING_EXPRESSION = re.compile(r"%(\w+)%")


@dataclass(frozen=True)
class Read:
    name: str | None  # None: the key is not a literal
    path: Path
    line: int
    function: str | None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (f" ({self.function})" if self.function else "")
        return f"{self.name or '<computed key>'} at {where}"


class _Reads(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, path: Path) -> None:
        self.path = path
        self.found: list[Read] = []
        self.functions: list[str] = []
        self.os_names = {"os"}
        self.environ_names: set[str] = set()
        self.getenv_names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                self.os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                for alias in node.names:
                    if alias.name == "environ":
                        self.environ_names.add(alias.asname or alias.name)
                    elif alias.name == "getenv":
                        self.getenv_names.add(alias.asname or alias.name)
        # Names bound to the environment or a copy of it, to a fixpoint (``e = env`` too).
        assignments = [n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)]
        while True:
            before = len(self.environ_names)
            for node in assignments:
                if node.value is not None and self.is_environment(node.value):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    self.environ_names |= {t.id for t in targets if isinstance(t, ast.Name)}
            if len(self.environ_names) == before:
                break

    def is_env(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            return isinstance(node.value, ast.Name) and node.value.id in self.os_names
        return isinstance(node, ast.Name) and node.id in self.environ_names

    def is_environment(self, node: ast.AST) -> bool:
        """The environment itself or a copy: ``os.environ``, ``dict(os.environ)``,
        ``os.environ.copy()``, ``os.environ if env is None else env``."""
        if self.is_env(node):
            return True
        if isinstance(node, ast.IfExp):
            return self.is_environment(node.body) or self.is_environment(node.orelse)
        if isinstance(node, ast.BoolOp):
            return any(self.is_environment(v) for v in node.values)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "dict" and node.args:
                return self.is_environment(node.args[0])
            if isinstance(func, ast.Attribute) and func.attr == "copy":
                return self.is_environment(func.value)
        return False

    def record(self, key: ast.AST, node: ast.AST) -> None:
        function = self.functions[-1] if self.functions else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            self.found.append(Read(key.value, self.path, node.lineno, function))
        elif function not in ENV_HELPERS:
            self.found.append(Read(None, self.path, node.lineno, function))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        key = node.args[0] if node.args else None
        if key is not None:
            if isinstance(func, ast.Attribute):
                env_method = func.attr in READ_METHODS and self.is_env(func.value)
                getenv = func.attr == "getenv" and (
                    isinstance(func.value, ast.Name) and func.value.id in self.os_names
                )
                if env_method or getenv:
                    self.record(key, node)
            elif isinstance(func, ast.Name) and (
                func.id in self.getenv_names or func.id in ENV_HELPERS
            ):
                self.record(key, node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Load) and self.is_env(node.value):
            self.record(node.slice, node)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn) and self.is_env(right):
                self.record(node.left, node)
        self.generic_visit(node)


def reads_in(source: str, path: Path) -> list[Read]:
    tree = ast.parse(source, filename=str(path))
    visitor = _Reads(tree, path)
    visitor.visit(tree)
    return visitor.found


def reads_under(root: Path, packages: tuple[str, ...]) -> list[Read]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found += reads_in(path.read_text(), path.relative_to(root))
    return found


def binding_settings(source: str) -> set[str]:
    """``%NAME%`` app settings in the arguments of calls (the trigger decorators): docstrings
    that mention the syntax are not bindings."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names |= set(BINDING_EXPRESSION.findall(arg.value))
    return names
