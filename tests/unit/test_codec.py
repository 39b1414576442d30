"""actors.toolkit.codec writes what json.dumps(separators=(",", ":")) writes, byte for byte."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.toolkit import codec
from actors.toolkit.envelope import EVENT_ID_NAMESPACE, event_id_for

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # non-ASCII, control characters, surrogates' neighbours
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def standard(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@given(documents)
def test_dumps_writes_the_standard_modules_bytes(obj: object) -> None:
    assert codec.dumps(obj) == standard(obj)


@pytest.mark.parametrize(
    "obj",
    [
        {"ok": True, "result": {"balance": 5}, "events": [{"event_id": "ab"}], "x": None},
        {"note": "café \u2028 \x7f \x1f"},
        [1e-07, 1e-5, 2.5e-8, 1e16, 1e22, -0.0, 5e-324, 0.1, 100.0],
        {"v": "1.5", "at": ":1.5e3", "x": [1.5]},
        {"quoted": 'x":1.5', "q": '\\":2e5'},
        [{"a": 1.5}, {"b": [-2.5e-3]}],
        1.5,
        {"e-5": "tee-5", "n": 2**64, "m": -(2**63) - 1},
        {1: "a non-string key"},
        [[[[[]]]]],
    ],
)
def test_dumps_agrees_where_orjson_alone_would_not(obj: object) -> None:
    assert codec.dumps(obj) == standard(obj)


def test_a_document_with_timestamps_and_no_float_is_written_by_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every event, snapshot and CloudEvent holds times like 04:00:00.123456: not floats."""

    def refused(obj: object) -> bytes:
        raise AssertionError(f"sent to json: {obj!r}")

    monkeypatch.setattr(codec, "_standard", refused)
    doc = {"time": "2026-12-02T04:00:00.123456+00:00", "n": [1, -2], "at": "12:30.5"}
    assert codec.dumps(doc) == standard(doc)


def test_dumps_refuses_what_the_standard_module_refuses() -> None:
    with pytest.raises(TypeError):
        codec.dumps({"when": object()})


@given(st.text(), st.text(), st.integers(min_value=0, max_value=2**40))
def test_event_ids_are_the_uuid5_of_type_id_and_version(type_: str, id_: str, version: int) -> None:
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{type_}/{id_}/{version}").hex
    assert event_id_for(type_, id_, version) == expected


@given(documents)
def test_loads_reads_what_the_standard_module_reads(obj: object) -> None:
    raw = standard(obj)
    assert repr(codec.loads(raw)) == repr(json.loads(raw))  # repr: -0.0 and 0.0 differ


@pytest.mark.parametrize(
    "raw",
    [
        b"12345678901234567890123",
        b"-9223372036854775809",
        b"[-9999999999999999999,18446744073709551616]",
        b'{"a":NaN,"b":-Infinity}',
        b'"\\ud800"',
        b"1E400",
        b"-0",
    ],
)
def test_loads_agrees_where_orjson_alone_would_not(raw: bytes) -> None:
    assert repr(codec.loads(raw)) == repr(json.loads(raw))
    assert type(codec.loads(raw)) is type(json.loads(raw))


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a":1,}', b"\xff", b"[1] x"])
def test_loads_raises_the_standard_modules_error(raw: bytes) -> None:
    with pytest.raises(ValueError) as ours:  # noqa: PT011 (the same error is the point)
        codec.loads(raw)
    with pytest.raises(ValueError) as theirs:  # noqa: PT011
        json.loads(raw)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


@given(documents, st.sampled_from([(",", ":"), (", ", ": ")]))
def test_loads_reads_text_as_the_standard_module_does(obj: object, separators: Any) -> None:
    raw = json.dumps(obj, separators=separators, ensure_ascii=False)
    assert repr(codec.loads(raw)) == repr(json.loads(raw))
    assert repr(codec.loads(json.dumps(obj))) == repr(json.loads(json.dumps(obj)))


@pytest.mark.parametrize(
    "raw",
    [
        "12345678901234567890123",
        "-9223372036854775809",
        '{"a":NaN,"b":-Infinity}',
        '"\\ud800"',
        "1E400",
        "-0",
        "7",
    ],
)
def test_loads_agrees_on_text_where_orjson_alone_would_not(raw: str) -> None:
    assert repr(codec.loads(raw)) == repr(json.loads(raw))
    assert type(codec.loads(raw)) is type(json.loads(raw))


@pytest.mark.parametrize("raw", ["", "{", '{"a":1,}', "\ud800", "[1] x", "\ufeff1", "\u0661"])
def test_loads_raises_the_standard_modules_error_on_text(raw: str) -> None:
    with pytest.raises(ValueError) as ours:  # noqa: PT011 (the same error is the point)
        codec.loads(raw)
    with pytest.raises(ValueError) as theirs:  # noqa: PT011
        json.loads(raw)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


_RUN = re.compile(r"[0-9]{19}")
_pieces = st.lists(st.one_of(st.text("0123456789", min_size=15, max_size=22), st.text(max_size=4)))


@given(_pieces)
def test_a_run_of_19_digits_is_found_as_the_regex_finds_it(pieces: list[str]) -> None:
    text = "".join(pieces)
    expected = _RUN.search(text) is not None
    assert codec.long_digits(text) is expected
    assert codec.long_digits(text.encode()) is expected
    assert codec.long_digits(bytearray(text.encode())) is expected
