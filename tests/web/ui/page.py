"""Reading a rendered page in UI tests: find elements by tag and attributes, read their text.

Built on Django's own test HTML parser (``django.test.html``), so no extra dependency. The
contents of ``<template>`` elements (markup for the script to clone) are skipped: a user does
not see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse
from django.test.html import Element, parse_html


def _walk(element: Element) -> Iterator[Element]:
    for child in element.children:
        if isinstance(child, Element) and child.name != "template":
            yield child
            yield from _walk(child)


def attr(element: Element, name: str) -> str | None:
    """The attribute's value; ``""`` for a boolean attribute; ``None`` when absent."""
    for key, value in element.attributes:
        if key == name:
            return "" if value is None else value
    return None


def has(element: Element, name: str) -> bool:
    return attr(element, name) is not None


def text(element: Element | str) -> str:
    if isinstance(element, str):
        return element
    return " ".join(t for t in (text(c) for c in element.children) if t).strip()


class Page:
    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.root = parse_html(response.content.decode())

    def all(
        self, tag: str | None = None, within: Element | None = None, **attrs: Any
    ) -> list[Element]:
        """Elements with this tag (any if None) whose attributes match: ``data_field="x"`` is
        ``data-field="x"``, ``True`` means present, ``class_`` must contain the class."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        found = []
        start = within or self.root
        candidates = _walk(start) if within is not None else [start, *_walk(start)]
        for element in candidates:
            if tag is not None and element.name != tag:
                continue
            if all(self._matches(element, k, v) for k, v in wanted.items()):
                found.append(element)
        return found

    @staticmethod
    def _matches(element: Element, name: str, value: Any) -> bool:
        actual = attr(element, name)
        if value is True:
            return actual is not None
        if value is False:
            return actual is None
        if name == "class":
            return actual is not None and value in actual.split()
        return actual == value

    def one(self, tag: str | None = None, within: Element | None = None, **attrs: Any) -> Element:
        found = self.all(tag, within, **attrs)
        assert len(found) == 1, f"expected one {tag or '*'} {attrs}, found {len(found)}"
        return found[0]

    def by_id(self, element_id: str) -> Element:
        return self.one(id=element_id)

    def label_for(self, control: Element) -> str:
        return text(self.one("label", for_=attr(control, "id")))

    def text(self) -> str:
        return text(self.root)
