"""The text tool plugins (base64, hashes, JSON) and the discovery of every shipped plugin.

Each tool runs through ``local_context`` (``plugin_runs.run_tool``) on input made here; the image,
PDF and video tools have their own files beside this one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.tools.base import InvalidInput
from services.tools.plugins.data import JsonFormat, JsonValidate
from services.tools.plugins.encoders import Base64Decode, Base64Encode
from services.tools.plugins.hashes import HashFile, HashText
from services.tools.registry import discover
from tests.services.tools.plugin_runs import run_tool

# --- registry ---------------------------------------------------------------------------------

EXPECTED = {
    "base64-encode": ("encoders", "sync"),
    "base64-decode": ("encoders", "sync"),
    "hash-text": ("encoders", "sync"),
    "hash-file": ("encoders", "sync"),
    "json-format": ("data", "sync"),
    "json-validate": ("data", "sync"),
    "image-convert": ("image", "async"),
    "image-resize": ("image", "async"),
    "image-rotate": ("image", "async"),
    "pdf-merge": ("pdf", "async"),
    "pdf-split": ("pdf", "async"),
    "pdf-rotate": ("pdf", "async"),
    "video-rotate": ("video", "async"),
}


def test_discovery_registers_every_tool_with_its_category_and_mode() -> None:
    registry = discover(group=None)
    ours = [p for p in registry.problems if p.origin.startswith("services.tools.plugins.")]
    assert ours == []
    for slug, (category, mode) in EXPECTED.items():
        tool = registry.get(slug)
        assert (tool.category, tool.mode) == (category, mode)
        assert tool.describe()["params_schema"]["type"] == "object"
    assert "schema" in registry.get("json-validate").describe()["params_schema"]["properties"]


# --- encoders and hashes ----------------------------------------------------------------------


@pytest.mark.parametrize("url_safe", [False, True])
def test_base64_round_trip(tmp_path: Path, url_safe: bool) -> None:
    text = "héllo ~~~ wörld??>>"  # the ?, > and ~ give + and / (or - and _) in the output
    encoded = run_tool(Base64Encode(), tmp_path, {"text": text, "url_safe": url_safe}).text
    assert ("-" in encoded or "_" in encoded) == url_safe
    assert ("+" in encoded or "/" in encoded) != url_safe
    decoded = run_tool(Base64Decode(), tmp_path, {"text": encoded, "url_safe": url_safe}).text
    assert decoded == text


def test_base64_decode_takes_line_breaks_and_missing_padding(tmp_path: Path) -> None:
    assert run_tool(Base64Decode(), tmp_path, {"text": "aGVs\nbG8"}).text == "hello"


@pytest.mark.parametrize(
    ("text", "url_safe", "words"),
    [
        ("aGVsbG8*", False, "'*' is not in the alphabet"),
        ("ab-_", False, "set url_safe"),
        ("abcde", False, "length"),
        ("aGVsbG8====", False, "padding"),
    ],
)
def test_base64_decode_refuses_invalid_base64(
    tmp_path: Path, text: str, url_safe: bool, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_tool(Base64Decode(), tmp_path, {"text": text, "url_safe": url_safe})
    assert caught.value.code == "invalid_input"
    assert "invalid base64" in str(caught.value) and words in str(caught.value)


def test_base64_decode_refuses_bytes_that_are_not_text(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="decoded bytes are not text"):
        run_tool(Base64Decode(), tmp_path, {"text": "//79"})  # ff fe fd


def test_base64_encode_refuses_more_than_fits_an_inline_result() -> None:
    with pytest.raises(ValidationError, match="at most 49152"):
        Base64Encode.Params.model_validate({"text": "x" * 49153})


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256", "sha512", "blake2b"])
def test_hash_text_matches_hashlib(tmp_path: Path, algorithm: str) -> None:
    text = "Grüße aus MagicToolbox"
    result = run_tool(HashText(), tmp_path, {"text": text, "algorithm": algorithm})
    assert result.text == hashlib.new(algorithm, text.encode()).hexdigest()


def test_hash_file_streams_a_multi_chunk_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # about 3 MB: several 1 MB chunks
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    result = run_tool(HashFile(), tmp_path, {"algorithm": "sha512"}, path)
    assert result.text == hashlib.sha512(data).hexdigest()
    assert len(result.progress) >= 3 and result.progress[-1] == 100


def test_hash_refuses_unknown_algorithms() -> None:
    with pytest.raises(ValidationError):
        HashText.Params.model_validate({"text": "x", "algorithm": "crc32"})


# --- JSON -------------------------------------------------------------------------------------


def test_json_format_indents_sorts_and_minifies(tmp_path: Path) -> None:
    text = '{"b": [1, 2], "a": "é"}'
    pretty = run_tool(JsonFormat(), tmp_path, {"text": text, "indent": 4, "sort_keys": True})
    assert pretty.text == '{\n    "a": "é",\n    "b": [\n        1,\n        2\n    ]\n}'
    minified = run_tool(JsonFormat(), tmp_path, {"text": text, "indent": 0})
    assert minified.text == '{"b":[1,2],"a":"é"}'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{\n  "a": 1,\n  "b": }', "line 3, column 8"),
        ('{"a": NaN}', "NaN is not a JSON value"),
        ("", "line 1, column 1"),
    ],
)
def test_json_format_says_where_json_is_invalid(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match="invalid JSON") as caught:
        run_tool(JsonFormat(), tmp_path, {"text": text})
    assert words in str(caught.value)


def test_json_format_refuses_out_of_range_indent() -> None:
    with pytest.raises(ValidationError):
        JsonFormat.Params.model_validate({"text": "{}", "indent": 9})


def test_json_validate_answers_with_a_report(tmp_path: Path) -> None:
    good = run_tool(JsonValidate(), tmp_path, {"text": '{"a": [1, 2]}'})
    assert json.loads(good.text) == {"valid": True}
    bad = run_tool(JsonValidate(), tmp_path, {"text": '{"a": [1, 2}'})
    report = json.loads(bad.text)
    assert report["valid"] is False
    assert report["errors"][0]["line"] == 1 and report["errors"][0]["column"] == 12


def test_json_validate_with_a_schema(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    result = run_tool(JsonValidate(), tmp_path, {"text": '{"n": "x"}', "schema": schema})
    report = json.loads(result.text)
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        # Not installed here: only the syntax is checked, and the report must not claim more.
        assert report == {
            "valid": True,
            "schema_checked": False,
            "note": "jsonschema is not installed here: only the syntax was checked",
        }
    else:
        assert report["valid"] is False and report["schema_checked"] is True
        assert report["errors"][0]["path"] == "/n"


def test_json_validate_refuses_schemas_with_remote_refs() -> None:
    schema = {"properties": {"a": {"items": [{"$ref": "https://example.com/s.json"}]}}}
    with pytest.raises(ValidationError, match="only local"):
        JsonValidate.Params.model_validate({"text": "{}", "schema": schema})
    local = {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}}
    assert JsonValidate.Params.model_validate({"text": "{}", "schema": local}).json_schema
