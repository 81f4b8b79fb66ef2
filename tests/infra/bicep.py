"""Just enough of a Bicep reader for tests/infra: there is no Bicep compiler offline.

``BicepFile`` keeps the text and a *masked* copy of the same length in which comments and the
literal text of strings are blanked (quotes and ``${…}`` interpolations stay), so that
brackets, keys and identifiers are found by plain scanning without being fooled by a brace or
a name inside a string or a comment. ``Span`` is a slice of a file (an object, an array, a
value) that can be taken apart: ``props()`` of an object, ``items()`` of an array, ``find(key)``
at any depth, ``literal()`` of a plain string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

OPEN, CLOSE = "([{", ")]}"


class BicepSyntaxError(ValueError):
    pass


def _mask(text: str) -> tuple[str, dict[int, int]]:
    """(masked text, {string start: index after its closing quote})."""
    out = list(text)
    strings: dict[int, int] = {}

    def blank(i: int) -> None:
        if out[i] != "\n":
            out[i] = " "

    def code(i: int, in_interpolation: bool) -> int:
        depth = 0
        while i < len(text):
            if text.startswith("//", i):
                while i < len(text) and text[i] != "\n":
                    blank(i)
                    i += 1
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                if end < 0:
                    raise BicepSyntaxError(f"unterminated comment at offset {i}")
                for k in range(i, end + 2):
                    blank(k)
                i = end + 2
            elif text.startswith("'''", i):
                end = text.find("'''", i + 3)
                if end < 0:
                    raise BicepSyntaxError(f"unterminated multi-line string at offset {i}")
                for k in range(i + 3, end):
                    blank(k)
                strings[i] = end + 3
                i = end + 3
            elif text[i] == "'":
                start = i
                i = string(i + 1)
                strings[start] = i
            else:
                if in_interpolation:
                    if text[i] == "{":
                        depth += 1
                    elif text[i] == "}":
                        if depth == 0:
                            return i
                        depth -= 1
                i += 1
        if in_interpolation:
            raise BicepSyntaxError("unterminated ${…} interpolation")
        return i

    def string(i: int) -> int:
        while i < len(text):
            c = text[i]
            if c == "\\":
                blank(i)
                if i + 1 < len(text):
                    blank(i + 1)
                i += 2
            elif c == "'":
                return i + 1
            elif text.startswith("${", i):
                i = code(i + 2, in_interpolation=True) + 1
            elif c == "\n":
                raise BicepSyntaxError(f"unterminated string at offset {i}")
            else:
                blank(i)
                i += 1
        raise BicepSyntaxError("unterminated string at the end of the file")

    code(0, in_interpolation=False)
    return "".join(out), strings


@dataclass(frozen=True)
class Declaration:
    keyword: str  # resource, module, param, output, var
    name: str
    detail: str  # the type string of a resource / module path / param type
    body: Span | None
    line: int


class BicepFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text()
        self.masked, self.strings = _mask(self.text)

    def __repr__(self) -> str:
        return f"BicepFile({self.path.name})"

    def line_of(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1

    def unbalanced(self) -> list[str]:
        """Brackets that do not pair up, as messages (empty: all balanced)."""
        stack: list[tuple[str, int]] = []
        problems = []
        for i, c in enumerate(self.masked):
            if c in OPEN:
                stack.append((c, i))
            elif c in CLOSE:
                if not stack or OPEN.index(stack[-1][0]) != CLOSE.index(c):
                    problems.append(f"line {self.line_of(i)}: unexpected {c!r}")
                    continue
                stack.pop()
        problems += [f"line {self.line_of(i)}: {c!r} is never closed" for c, i in stack]
        return problems

    def close_of(self, i: int) -> int:
        """Index of the bracket that closes the one at ``i``."""
        depth = 0
        for k in range(i, len(self.masked)):
            c = self.masked[k]
            if c in OPEN:
                depth += 1
            elif c in CLOSE:
                depth -= 1
                if depth == 0:
                    return k
        raise BicepSyntaxError(f"{self.path.name}: bracket at line {self.line_of(i)} never closes")

    def span(self, start: int, end: int) -> Span:
        return Span(self, start, end)

    def value_at(self, i: int) -> Span:
        """The value starting at (or after whitespace from) ``i``: a bracketed block, a string,
        or an expression up to the end of its line, a top-level comma or a closing bracket."""
        while self.masked[i] in " \t":
            i += 1
        if self.masked[i] in "{[(":
            return self.span(i, self.close_of(i) + 1)
        if i in self.strings and not _continues(self.masked, self.strings[i]):
            return self.span(i, self.strings[i])
        depth, k = 0, i
        while k < len(self.masked):
            c = self.masked[k]
            if c in OPEN:
                depth += 1
            elif c in CLOSE:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and (c == "," or (c == "\n" and not _continues(self.masked, k))):
                break
            k += 1
        return self.span(i, k)._stripped()

    # -- declarations ----------------------------------------------------------------------------

    @cached_property
    def declarations(self) -> list[Declaration]:
        found = []
        pattern = re.compile(
            r"^[ \t]*(resource|module|param|output|var)[ \t]+(\w+)[ \t]+('[^'\n]*'|[^\s=]+)?",
            re.M,
        )
        for m in pattern.finditer(self.masked):
            keyword, name = m.group(1), m.group(2)
            detail = self.text[m.start(3) : m.end(3)] if m.group(3) else ""
            body = None
            equals = self.masked.find("=", m.end())
            newline = self.masked.find("\n", m.end())
            if equals >= 0 and (newline < 0 or equals < newline):
                i = equals + 1
                while self.masked[i] in " \t":
                    i += 1
                if self.masked.startswith("if", i) and keyword in ("resource", "module"):
                    i = self.close_of(self.masked.index("(", i)) + 1
                body = self.value_at(i)
            found.append(
                Declaration(keyword, name, detail.strip("'"), body, self.line_of(m.start()))
            )
        return found

    def of(self, keyword: str) -> list[Declaration]:
        return [d for d in self.declarations if d.keyword == keyword]

    def resources(self, type_prefix: str) -> list[Declaration]:
        """Resources (not ``existing`` ones) whose type is ``type_prefix`` (any API version)."""
        return [
            d
            for d in self.of("resource")
            if d.detail.split("@")[0] == type_prefix and " existing" not in self.line(d)
        ]

    def line(self, declaration: Declaration) -> str:
        return self.masked.splitlines()[declaration.line - 1]

    def params(self) -> dict[str, Param]:
        lines = self.masked.splitlines()
        found = {}
        for d in self.of("param"):
            decorators = []
            k = d.line - 2
            while k >= 0 and lines[k].strip().startswith("@"):
                decorators.append(self.text.splitlines()[k].strip())
                k -= 1
            found[d.name] = Param(
                d.name,
                d.detail,
                has_default=d.body is not None,
                secure=any(x.startswith("@secure(") for x in decorators),
            )
        return found


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    has_default: bool
    secure: bool


def _continues(masked: str, k: int) -> bool:
    """Whether the expression ending at ``k`` goes on after the line break: a ternary split
    over lines, like ``cond\\n ? a\\n : b``."""
    rest = masked[k:].lstrip(" \t\n")
    return rest[:1] in ("?", ":") or rest[:2] in ("&&", "||")


class Span:
    def __init__(self, file: BicepFile, start: int, end: int) -> None:
        self.file, self.start, self.end = file, start, end

    @property
    def text(self) -> str:
        return self.file.text[self.start : self.end]

    @property
    def masked(self) -> str:
        return self.file.masked[self.start : self.end]

    @property
    def line(self) -> int:
        return self.file.line_of(self.start)

    def __repr__(self) -> str:
        return f"<{self.file.path.name}:{self.line} {self.text[:60]!r}>"

    def literal(self) -> str | None:
        """The value of a plain string (no interpolation), else None."""
        text = self.text.strip()
        if re.fullmatch(r"'[^'\\$]*'", text):
            return text[1:-1]
        return None

    def _segments(self, opening: str) -> list[tuple[int, int]]:
        masked = self.file.masked
        start = self.start + len(self.masked) - len(self.masked.lstrip())
        if masked[start] != opening:
            raise BicepSyntaxError(f"expected {opening!r} at {self!r}")
        end = self.file.close_of(start)
        parts, depth, seg = [], 0, start + 1
        for k in range(start + 1, end):
            c = masked[k]
            if c in OPEN:
                depth += 1
            elif c in CLOSE:
                depth -= 1
            elif depth == 0 and (c == "," or (c == "\n" and not _continues(masked, k))):
                parts.append((seg, k))
                seg = k + 1
        parts.append((seg, end))
        return [(a, b) for a, b in parts if masked[a:b].strip()]

    def items(self) -> list[Span]:
        """The elements of an array literal (not of a ``[for …]`` loop)."""
        if self.masked.lstrip()[1:].lstrip().startswith("for "):
            raise BicepSyntaxError(f"{self!r} is a for-expression, not an array literal")
        return [self.file.span(a, b)._stripped() for a, b in self._segments("[")]

    def props(self) -> dict[str, Span]:
        """The properties of an object literal: key → value."""
        found = {}
        for a, b in self._segments("{"):
            colon = self.file.masked.find(":", a, b)
            if colon < 0:
                raise BicepSyntaxError(f"no key in {self.file.span(a, b)!r}")
            key = self.file.text[a:colon].strip().strip("'")
            found[key] = self.file.span(colon + 1, b)._stripped()
        return found

    def find(self, key: str) -> Span | None:
        """The value of the first ``key:`` inside this span, at any depth."""
        m = re.search(rf"(?<![\w.]){re.escape(key)}\s*:", self.masked)
        if m is None:
            return None
        return self.file.value_at(self.start + m.end())

    def find_all(self, key: str) -> list[Span]:
        return [
            self.file.value_at(self.start + m.end())
            for m in re.finditer(rf"(?<![\w.]){re.escape(key)}\s*:", self.masked)
        ]

    def _stripped(self) -> Span:
        text = self.masked
        lead = len(text) - len(text.lstrip())
        trail = len(text) - len(text.rstrip())
        return self.file.span(self.start + lead, self.end - trail)


def infra_files(infra: Path) -> list[BicepFile]:
    """Every Bicep file under ``infra`` (main.bicep and its modules)."""
    return [BicepFile(path) for path in sorted(infra.rglob("*.bicep"))]


def resources_of(files: list[BicepFile], type_: str) -> list[tuple[BicepFile, Declaration]]:
    return [(f, d) for f in files for d in f.resources(type_)]
