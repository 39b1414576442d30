"""Read-model rows keep their stored form: to_hash writes, and from_hash reads, exactly what
the standard json module wrote and read before actors.toolkit.codec took over."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readmodels.rows import LineRow, OrderRow, R, Row, StockRow, WalletRow, from_hash, to_hash

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
