"""Event Grid's subscription filters: event types, subject prefix and suffix, advanced filters.

Pure functions over one event as a JSON object (either schema), following Event Grid's documented
semantics: every filter must match; one advanced filter's values are alternatives (the ``Not``
operators must hold for all); string comparisons ignore case; a key names an envelope attribute or
a path into the data, and an array value is matched element by element; a missing key matches
only the ``Not`` operators (``IsNullOrUndefined``/``IsNotNull`` test exactly that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

MISSING = object()

# The ``Not`` operators: no (key value, filter value) pair may match the positive counterpart.
_NONE: dict[str, str] = {
    "NumberNotIn": "NumberIn",
    "NumberNotInRange": "NumberInRange",
    "StringNotIn": "StringIn",
    "StringNotContains": "StringContains",
    "StringNotBeginsWith": "StringBeginsWith",
    "StringNotEndsWith": "StringEndsWith",
}
# Operators that take one ``value`` rather than a list of ``values``.
SINGLE_VALUE = {
    "NumberLessThan",
    "NumberGreaterThan",
    "NumberLessThanOrEquals",
    "NumberGreaterThanOrEquals",
    "BoolEquals",
}
NO_VALUE = {"IsNullOrUndefined", "IsNotNull"}


class FilterError(ValueError):
    """An advanced filter that Event Grid would refuse when the subscription is created."""


def _number(value: Any) -> Decimal | None:
    """Event Grid compares numbers as .NET decimals; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _text(value: Any) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _numbers(test: Callable[[Decimal, Decimal], bool]) -> Callable[[Any, Any], bool]:
    def compare(actual: Any, expected: Any) -> bool:
        a, e = _number(actual), _number(expected)
        return a is not None and e is not None and test(a, e)

    return compare


def _strings(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def compare(actual: Any, expected: Any) -> bool:
        a, e = _text(actual), _text(expected)
        return a is not None and e is not None and test(a, e)

    return compare


def _in_range(actual: Any, bounds: Any) -> bool:
    a = _number(actual)
    if a is None or not isinstance(bounds, list | tuple) or len(bounds) != 2:
        return False
    low, high = _number(bounds[0]), _number(bounds[1])
    return low is not None and high is not None and low <= a <= high


# Operators whose filter values are alternatives: one (key value, filter value) pair must match.
_ANY: dict[str, Callable[[Any, Any], bool]] = {
    "NumberIn": _numbers(lambda a, e: a == e),
    "NumberInRange": _in_range,
    "NumberLessThan": _numbers(lambda a, e: a < e),
    "NumberGreaterThan": _numbers(lambda a, e: a > e),
    "NumberLessThanOrEquals": _numbers(lambda a, e: a <= e),
    "NumberGreaterThanOrEquals": _numbers(lambda a, e: a >= e),
    "BoolEquals": lambda a, e: isinstance(a, bool) and isinstance(e, bool) and a is e,
    "StringIn": _strings(lambda a, e: a == e),
    "StringContains": _strings(lambda a, e: e in a),
    "StringBeginsWith": _strings(lambda a, e: a.startswith(e)),
    "StringEndsWith": _strings(lambda a, e: a.endswith(e)),
}
OPERATORS = frozenset(_ANY) | frozenset(_NONE) | NO_VALUE


def lookup(event: Mapping[str, Any], key: str) -> Any:
    """The value at ``key`` (``data.a.b``, ``subject``…), or MISSING; names ignore case when
    the exact spelling is absent."""
    node: Any = event
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return MISSING
        if part in node:
            node = node[part]
            continue
        folded = part.casefold()
        match = next((k for k in node if isinstance(k, str) and k.casefold() == folded), None)
        if match is None:
            return MISSING
        node = node[match]
    return node


@dataclass(frozen=True, slots=True)
class AdvancedFilter:
    operator: str
    key: str
    values: tuple[Any, ...] = ()

    @classmethod
    def from_config(cls, doc: Mapping[str, Any]) -> AdvancedFilter:
        operator = doc.get("operatorType")
        key = doc.get("key")
        if operator not in OPERATORS:
            raise FilterError(f"unknown advanced filter operatorType {operator!r}")
        if not isinstance(key, str) or not key:
            raise FilterError(f"{operator}: key must be a non-empty string")
        if operator in NO_VALUE:
            return cls(operator, key)
        if operator in SINGLE_VALUE:
            if "value" not in doc:
                raise FilterError(f"{operator} on {key}: value is required")
            return cls(operator, key, (doc["value"],))
        values = doc.get("values")
        if not isinstance(values, list) or not values:
            raise FilterError(f"{operator} on {key}: values must be a non-empty list")
        return cls(operator, key, tuple(values))

    def matches(self, event: Mapping[str, Any]) -> bool:
        found = lookup(event, self.key)
        if self.operator == "IsNullOrUndefined":
            return found is MISSING or found is None
        if self.operator == "IsNotNull":
            return found is not MISSING and found is not None
        actual = [] if found is MISSING or found is None else found
        actual = actual if isinstance(actual, list) else [actual]
        positive = _NONE.get(self.operator, self.operator)
        test = _ANY[positive]
        hit = any(test(a, e) for a in actual for e in self.values)
        return not hit if self.operator in _NONE else hit


@dataclass(frozen=True, slots=True)
class Filter:
    """A subscription's filter; the empty filter lets every event through."""

    included_event_types: tuple[str, ...] = ()
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    subject_case_sensitive: bool = False
    advanced: tuple[AdvancedFilter, ...] = field(default=())

    @classmethod
    def from_config(cls, doc: Mapping[str, Any] | None) -> Filter:
        doc = doc or {}
        types = doc.get("includedEventTypes") or ()
        if not isinstance(types, list | tuple) or not all(isinstance(t, str) for t in types):
            raise FilterError("includedEventTypes must be a list of strings")
        advanced = doc.get("advancedFilters") or []
        if not isinstance(advanced, list):
            raise FilterError("advancedFilters must be a list")
        return cls(
            included_event_types=tuple(types),
            subject_begins_with=str(doc.get("subjectBeginsWith") or ""),
            subject_ends_with=str(doc.get("subjectEndsWith") or ""),
            subject_case_sensitive=bool(doc.get("isSubjectCaseSensitive", False)),
            advanced=tuple(AdvancedFilter.from_config(a) for a in advanced),
        )

    def matches(self, event_type: str, subject: str, event: Mapping[str, Any]) -> bool:
        return (
            matches_type(self.included_event_types, event_type)
            and matches_subject(
                subject,
                self.subject_begins_with,
                self.subject_ends_with,
                case_sensitive=self.subject_case_sensitive,
            )
            and all(f.matches(event) for f in self.advanced)
        )


def matches_type(included: Sequence[str], event_type: str) -> bool:
    """No list (or Event Grid's legacy ``All``) lets every type through."""
    if not included or any(t.casefold() == "all" for t in included):
        return True
    folded = event_type.casefold()
    return any(t.casefold() == folded for t in included)


def matches_subject(
    subject: str, begins_with: str, ends_with: str, *, case_sensitive: bool = False
) -> bool:
    if not case_sensitive:
        subject, begins_with, ends_with = (
            subject.casefold(),
            begins_with.casefold(),
            ends_with.casefold(),
        )
    return subject.startswith(begins_with) and subject.endswith(ends_with)
