"""The API's streaming multipart parser reads forms as Django's parser would, but the file last."""

from __future__ import annotations

import io

import pytest

from services.problems import Problem
from web.uploads import MAX_FIELDS_BYTES, StreamingMultiPartParser

BOUNDARY = "b0undary"


def form(*parts: tuple[str, bytes]) -> io.BytesIO:
    body = b""
    for disposition, value in parts:
        body += f"--{BOUNDARY}\r\nContent-Disposition: form-data{disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return io.BytesIO(body + f"--{BOUNDARY}--\r\n".encode())


def parse(stream: io.BytesIO) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    parsed = StreamingMultiPartParser().parse(
        stream, f"multipart/form-data; boundary={BOUNDARY}", {}
    )
    files = {name: b"".join(f.chunks()) for name, f in parsed.files.items()}
    return {k: parsed.data.getlist(k) for k in parsed.data}, files


def test_fields_then_the_file_streamed_on() -> None:
    data, files = parse(
        form(
            ('; name="tool"', b"hash-text"),
            ('; name="params"', '{"text": "é"}'.encode()),
            ('; name="file"; filename="a.txt"', b"line one\r\nline two"),
        )
    )
    assert data == {"tool": ["hash-text"], "params": ['{"text": "é"}']}
    assert files == {"file": b"line one\r\nline two"}


def test_a_part_without_a_name_is_skipped_and_an_empty_name_is_a_field_as_in_django() -> None:
    data, files = parse(
        form(
            ("", b"no name at all"),
            ('; name=""', b"empty name"),
            ('; name="tool"', b"json-format"),
            ('; name="file"; filename="f"', b"{}"),
        )
    )
    assert data == {"": ["empty name"], "tool": ["json-format"]}
    assert files == {"file": b"{}"}


def test_a_field_after_the_file_or_a_file_before_the_tool_is_refused() -> None:
    after = form(
        ('; name="tool"', b"json-format"),
        ('; name="file"; filename="f"', b"{}"),
        ('; name="params"', b"{}"),
    )
    _, files = parse_lazily(after)
    with pytest.raises(Problem) as refused:
        b"".join(files["file"].chunks())
    assert refused.value.code == "field_after_file"
    with pytest.raises(Problem) as refused:
        parse(form(('; name="file"; filename="f"', b"{}"), ('; name="tool"', b"json-format")))
    assert refused.value.code == "field_after_file"


def test_fields_past_their_limit_are_a_413_named_or_not() -> None:
    for disposition in ('; name="params"', ""):
        with pytest.raises(Problem) as refused:
            parse(form((disposition, b"x" * (MAX_FIELDS_BYTES + 1))))
        assert (refused.value.code, refused.value.status) == ("fields_too_large", 413)


def parse_lazily(stream: io.BytesIO) -> tuple[object, dict[str, object]]:
    parsed = StreamingMultiPartParser().parse(
        stream, f"multipart/form-data; boundary={BOUNDARY}", {}
    )
    return parsed.data, dict(parsed.files.items())
