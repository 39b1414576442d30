"""Read-model rows keep their stored form: to_hash writes, and from_hash reads, exactly what
the standard json module wrote and read before actors.toolkit.codec took over."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readmodels.rows import (
    TIME_FORMAT,
    LineRow,
    OrderRow,
    R,
    Row,
    StockRow,
    WalletRow,
    from_hash,
    iso,
    parse_iso,
    to_hash,
)

integers = st.integers()  # beyond 64 bits too
texts = st.text()  # non-ASCII, control characters, DEL
versions = st.lists(integers, max_size=4).map(tuple)
rows = st.one_of(
    st.builds(
        OrderRow,
        order_id=texts,
        status=texts,
        status_version=integers,
        customer_id=texts,
        total=integers,
        lines=st.lists(
            st.builds(LineRow, sku=texts, quantity=integers, unit_price=integers), max_size=3
        ).map(tuple),
        reserved_skus=st.lists(texts, max_size=3).map(tuple),
        created_at=texts,
        cancel_reason=texts,
        aggregate_version=integers,
        applied_above=versions,
        updated_at=texts,
    ),
    st.builds(
        StockRow,
        sku=texts,
        on_hand=integers,
        reserved=integers,
        aggregate_version=integers,
        applied_above=versions,
    ),
    st.builds(
        WalletRow,
        customer_id=texts,
        balance=integers,
        held=integers,
        aggregate_version=integers,
        applied_above=versions,
    ),
)


def standard_hash(row: Row) -> dict[str, str]:
    """to_hash as the standard module wrote it."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in row.model_dump(mode="json").items()
    }


def standard_row(cls: type[R], aggregate_id: str, mapping: dict[str, str]) -> R:
    """from_hash as the standard module read it."""
    data: dict[str, Any] = {cls.id_field: aggregate_id}
    for name, field in cls.model_fields.items():
        raw = mapping.get(name)
        if raw is not None and name != cls.id_field:
            data[name] = raw if field.annotation is str else json.loads(raw)
    return cls.model_validate(data)


def outcome(read: Callable[..., Row], mapping: dict[str, str]) -> object:
    """The order row `read` makes of `mapping`, or its error (type and message)."""
    try:
        return read(OrderRow, "ord-1", mapping)
    except ValueError as exc:  # a JSONDecodeError or pydantic's ValidationError
        return (type(exc), str(exc))


@given(rows)
def test_a_row_is_stored_as_the_standard_module_wrote_it(row: Row) -> None:
    assert to_hash(row) == standard_hash(row)


@given(rows)
def test_a_stored_row_reads_back_as_the_standard_module_read_it(row: Row) -> None:
    stored = standard_hash(row)
    ours = from_hash(type(row), row.aggregate_id, stored)
    assert ours == standard_row(type(row), row.aggregate_id, stored)
    assert ours == row


@given(st.dictionaries(st.sampled_from(["total", "lines", "applied_above", "status"]), texts))
def test_any_stored_text_reads_as_the_standard_module_read_it(mapping: dict[str, str]) -> None:
    assert outcome(from_hash, mapping) == outcome(standard_row, mapping)


@pytest.mark.parametrize(
    "mapping",
    [
        {"total": "12345678901234567890123", "applied_above": "[1,2]"},
        {"total": "1e3"},
        {"total": "NaN"},
        {"lines": '[{"sku":"caf\\u00e9","quantity":1,"unit_price":2}]'},
        {"applied_above": "[1, 2 ,3]", "status_version": " 4 "},
    ],
)
def test_stored_text_orjson_alone_would_read_otherwise(mapping: dict[str, str]) -> None:
    assert outcome(from_hash, mapping) == outcome(standard_row, mapping)


offsets = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), None])
shaped = st.from_regex(
    r"\A[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9]\.[0-9]{6}Z\Z"
)


@given(st.datetimes(timezones=offsets))
def test_times_are_written_as_strftime_wrote_them(moment: dt.datetime) -> None:
    assert iso(moment) == moment.astimezone(dt.UTC).strftime(TIME_FORMAT)


def strptime(text: str) -> dt.datetime:
    """parse_iso as strptime read it."""
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)


def time_read(read: Callable[[str], dt.datetime], text: str) -> object:
    """The time `read` makes of `text` (and its tzinfo), or its error (type and message)."""
    try:
        moment = read(text)
    except ValueError as exc:
        return type(exc), str(exc)
    return moment, moment.tzinfo


@given(st.datetimes(timezones=offsets).map(iso) | shaped | st.text(max_size=30))
def test_times_are_read_as_strptime_read_them(text: str) -> None:
    assert time_read(parse_iso, text) == time_read(strptime, text)


@pytest.mark.parametrize(
    "text",
    ["2026-02-30T10:00:00.000000Z", "2026-1-2T3:4:5.6Z", "0999-01-01T00:00:00.000000Z", ""],
)
def test_odd_times_are_read_as_strptime_read_them(text: str) -> None:
    assert time_read(parse_iso, text) == time_read(strptime, text)


@pytest.mark.parametrize(
    "moment",
    [dt.datetime(5, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59)],
)
def test_odd_times_are_written_as_strftime_wrote_them(moment: dt.datetime) -> None:
    assert iso(moment) == moment.astimezone(dt.UTC).strftime(TIME_FORMAT)
