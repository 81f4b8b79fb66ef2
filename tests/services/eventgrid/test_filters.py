"""Event Grid's subscription filters, one rule at a time, as pure functions."""

from __future__ import annotations

import pytest

from services.eventgrid.filters import (
    MISSING,
    AdvancedFilter,
    Filter,
    FilterError,
    lookup,
    matches_subject,
    matches_type,
)

EVENT = {
    "specversion": "1.0",
    "id": "e1",
    "source": "/magictoolbox/local",
    "type": "MagicToolbox.Execution.Submitted",
    "subject": "/tools/image/image-rotate/executions/1",
    "streamversion": 0,
    "data": {
        "tool": "image-rotate",
        "angle": 90,
        "ratio": 0.5,
        "sync": False,
        "owner": None,
        "tags": ["photo", "Holiday"],
        "input": {"size": 2048, "contentType": "image/png"},
    },
}


def advanced(operator: str, key: str, values=None, value=None) -> AdvancedFilter:
    doc = {"operatorType": operator, "key": key}
    if values is not None:
        doc["values"] = values
    if value is not None:
        doc["value"] = value
    return AdvancedFilter.from_config(doc)


@pytest.mark.parametrize(
    ("operator", "key", "values", "expected"),
    [
        ("StringIn", "data.tool", ["IMAGE-ROTATE", "image-resize"], True),  # any value, any case
        ("StringIn", "data.tool", ["image-resize"], False),
        ("StringNotIn", "data.tool", ["image-resize", "pdf-merge"], True),
        ("StringNotIn", "data.tool", ["pdf-merge", "Image-Rotate"], False),  # every value must miss
        ("StringContains", "subject", ["/IMAGE/"], True),
        ("StringContains", "subject", ["/pdf/"], False),
        ("StringBeginsWith", "subject", ["/tools/pdf/", "/Tools/Image/"], True),
        ("StringEndsWith", "subject", ["/EXECUTIONS/1"], True),
        ("StringEndsWith", "subject", ["/executions/2"], False),
        ("StringNotContains", "subject", ["/pdf/"], True),
        ("StringNotBeginsWith", "subject", ["/tools/image/"], False),
        ("StringNotEndsWith", "subject", ["/2"], True),
        ("StringIn", "type", ["magictoolbox.execution.submitted"], True),
        ("StringIn", "source", ["/magictoolbox/local"], True),
        ("StringIn", "data.input.contentType", ["IMAGE/PNG"], True),  # nested keys
        ("StringIn", "data.tags", ["holiday"], True),  # an array matches by any element
        ("StringNotIn", "data.tags", ["holiday"], False),
        ("StringIn", "data.angle", ["90"], False),  # a number is not a string
        ("NumberIn", "data.angle", [0, 90, 180], True),
        ("NumberIn", "data.angle", [45], False),
        ("NumberIn", "streamversion", [0], True),  # an extension attribute
        ("NumberNotIn", "data.angle", [0, 180], True),
        ("NumberNotIn", "data.angle", [90], False),
        ("NumberIn", "data.sync", [0], False),  # a boolean is not a number
        ("NumberInRange", "data.input.size", [[0, 1024], [2000, 3000]], True),
        ("NumberNotInRange", "data.input.size", [[0, 1024]], True),
    ],
)
def test_operators_with_a_list_of_values(operator, key, values, expected):
    assert advanced(operator, key, values=values).matches(EVENT) is expected


@pytest.mark.parametrize(
    ("operator", "key", "value", "expected"),
    [
        ("NumberGreaterThan", "data.angle", 45, True),
        ("NumberGreaterThan", "data.angle", 90, False),
        ("NumberGreaterThanOrEquals", "data.angle", 90, True),
        ("NumberLessThan", "data.ratio", 0.75, True),
        ("NumberLessThan", "data.ratio", 0.5, False),
        ("NumberLessThanOrEquals", "data.ratio", 0.5, True),
        ("NumberLessThan", "data.tool", 5, False),  # a string is not a number
        ("BoolEquals", "data.sync", False, True),
        ("BoolEquals", "data.sync", True, False),
        ("BoolEquals", "data.angle", True, False),
    ],
)
def test_operators_with_one_value(operator, key, value, expected):
    assert advanced(operator, key, value=value).matches(EVENT) is expected


@pytest.mark.parametrize(
    ("operator", "key", "expected"),
    [
        ("IsNullOrUndefined", "data.owner", True),  # null
        ("IsNullOrUndefined", "data.missing", True),  # absent
        ("IsNullOrUndefined", "data.tool", False),
        ("IsNotNull", "data.tool", True),
        ("IsNotNull", "data.sync", True),  # false is a value
        ("IsNotNull", "data.owner", False),
        ("IsNotNull", "data.input.missing", False),
    ],
)
def test_null_checks(operator, key, expected):
    assert advanced(operator, key).matches(EVENT) is expected


def test_a_missing_key_matches_no_positive_operator_and_every_negative_one():
    assert not advanced("StringIn", "data.missing", values=["x"]).matches(EVENT)
    assert not advanced("NumberLessThan", "data.missing", value=1).matches(EVENT)
    assert advanced("StringNotIn", "data.missing", values=["x"]).matches(EVENT)
    assert advanced("NumberNotIn", "data.owner", values=[1]).matches(EVENT)


def test_keys_fall_back_to_any_case():
    assert lookup(EVENT, "Data.Input.ContentType") == "image/png"
    assert lookup(EVENT, "Subject") == EVENT["subject"]
    assert lookup(EVENT, "data.tool.deeper") is MISSING


def test_the_subject_filter_ignores_case_unless_told_not_to():
    subject = "/tools/Image/rotate"
    assert matches_subject(subject, "/TOOLS/image/", "")
    assert matches_subject(subject, "", "/ROTATE")
    assert not matches_subject(subject, "/tools/image/", "", case_sensitive=True)
    assert matches_subject(subject, "/tools/Image/", "rotate", case_sensitive=True)
    assert not matches_subject(subject, "/tools/image/", ".png")


def test_event_types_match_in_any_case_and_no_list_lets_all_through():
    assert matches_type([], "Anything")
    assert matches_type(["All"], "Anything")
    assert matches_type(["MagicToolbox.Execution.Submitted"], "magictoolbox.execution.SUBMITTED")
    assert not matches_type(["MagicToolbox.Execution.Completed"], "MagicToolbox.Execution.Failed")


def test_every_part_of_a_filter_must_match():
    event_filter = Filter.from_config(
        {
            "includedEventTypes": ["MagicToolbox.Execution.Submitted"],
            "subjectBeginsWith": "/tools/image/",
            "subjectEndsWith": "",
            "advancedFilters": [
                {"operatorType": "StringIn", "key": "data.tool", "values": ["image-rotate"]},
                {"operatorType": "NumberGreaterThan", "key": "data.angle", "value": 0},
            ],
        }
    )
    assert event_filter.matches(EVENT["type"], EVENT["subject"], EVENT)
    rotated_by_zero = {**EVENT, "data": {**EVENT["data"], "angle": 0}}
    assert not event_filter.matches(EVENT["type"], EVENT["subject"], rotated_by_zero)
    assert not event_filter.matches("MagicToolbox.Execution.Completed", EVENT["subject"], EVENT)
    assert not event_filter.matches(EVENT["type"], "/tools/pdf/x", EVENT)
    assert Filter().matches("any", "", {})


@pytest.mark.parametrize(
    "doc",
    [
        {"operatorType": "StringLike", "key": "data.tool", "values": ["x"]},
        {"operatorType": "StringIn", "key": "", "values": ["x"]},
        {"operatorType": "StringIn", "key": "data.tool", "values": []},
        {"operatorType": "NumberLessThan", "key": "data.angle"},
    ],
    ids=["unknown-operator", "no-key", "no-values", "no-value"],
)
def test_a_filter_event_grid_would_refuse_is_refused(doc):
    with pytest.raises(FilterError):
        AdvancedFilter.from_config(doc)
