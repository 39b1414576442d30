"""The rows this projector last read or wrote, kept so that a batch need not read them again.

A batch reads the rows it folds onto (one round trip), then writes them with APPLY, whose
check compares each row's bookkeeping (aggregate_version, applied_above) with the row as
read. A row this process wrote a moment ago is known without asking Redis: the row it
read, with the fields it wrote over them. And a row whose first event is the aggregate's
first (version 1) is taken to be absent. Either guess is checked by APPLY exactly as a
read is: a row another writer changed since (a rebuild's history pass, another projector)
or one that already existed (a redelivery after a restart) fails the check, nothing of it
is written, and its events go round again from a fresh read. So a guess costs a round
trip only when it was wrong; the rows this process keeps writing (every SKU's, every
wallet's, an order's through its saga) cost none.

Bounded: the least recently used rows are let go past `capacity`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

DEFAULT_CAPACITY: Final = 4096


class KnownRows:
    """Rows by key (with their generation), as Redis holds them if no one else wrote."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._rows: OrderedDict[str, dict[str, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> dict[str, str] | None:
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def put(self, key: str, row: dict[str, str]) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._rows.pop(key, None)
