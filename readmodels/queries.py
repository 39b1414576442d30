"""Queries over the read models (the gateway serves them): rows, pages, freshness.

Lists are sorted sets read in pages; the cursor is the (score, member) of the last item
returned, so a page continues exactly after it however many entries were inserted
since (an insert before the cursor is simply not seen by this walk). Members with equal
scores are ordered by member, as Redis orders them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from redis.asyncio import Redis

from readmodels.keys import Generation, Layout
from readmodels.rows import OrderRow, Row, StockRow, WalletRow, from_hash

R = TypeVar("R", bound=Row)
MAX_WAIT_S: Final = 2.0


class InvalidCursorError(ValueError):
    """A cursor this reader did not hand out."""


@dataclass(frozen=True)
class Cursor:
    score: float
    member: str

    def encode(self) -> str:
        raw = json.dumps([self.score, self.member], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            score, member = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not math.isfinite(score) or not isinstance(member, str):
                raise ValueError("not a (score, member) pair")
            return cls(float(score), member)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidCursorError("cursor is malformed; use next_cursor as given") from exc


@dataclass(frozen=True)
class Freshness:
    """The newest event reflected in the read models, and how late it was applied."""

    last_event_at: str | None = None
    applied_at: str | None = None
    projection_lag_ms: int | None = None


@dataclass(frozen=True)
class Found(Generic[R]):
    row: R | None
    freshness: Freshness


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None
    freshness: Freshness


@dataclass(frozen=True)
class InProgress:
    """The orders listed in one status: how many, and how old (placement times, ms)."""

    status: str
    count: int
    oldest_placed_ms: float | None  # None: no order in this status
    placed_by_cutoff: int  # how many were placed at or before the cutoff


@dataclass(frozen=True)
class Range:
    """A walk over one sorted set: newest first (orders) or lowest first (low stock)."""

    key: str
    descending: bool
    bound: str  # the far end: "-inf" / "+inf", or "(<n>" for "below n"


class ReadModels:
    def __init__(
        self, redis: Redis, *, layout: Layout | None = None, max_wait_s: float = MAX_WAIT_S
    ) -> None:
        self._redis = redis
        self.layout = layout or Layout()
        self.max_wait_s = max_wait_s

    async def _generation(self) -> Generation:
        active = await self._redis.get(self.layout.active_key)
        return self.layout.generation(str(active) if active else None)

    async def _row(self, cls: type[R], aggregate_id: str) -> Found[R]:
        gen = await self._generation()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(gen.key(f"{cls.kind}:{aggregate_id}"))
            pipe.hgetall(gen.meta)
            stored, meta = await pipe.execute()
        row = from_hash(cls, aggregate_id, stored) if stored else None
        return Found(row, _freshness(meta))

    async def order(self, order_id: str) -> Found[OrderRow]:
        return await self._row(OrderRow, order_id)

    async def stock(self, sku: str) -> Found[StockRow]:
        return await self._row(StockRow, sku)

    async def wallet(self, customer_id: str) -> Found[WalletRow]:
        return await self._row(WalletRow, customer_id)

    async def order_at_least(self, order_id: str, version: int) -> tuple[Found[OrderRow], bool]:
        """Poll until its row has applied `version` (at most max_wait_s): (found, reached)."""
        deadline, delay = time.monotonic() + self.max_wait_s, 0.02
        while True:
            found = await self.order(order_id)
            if found.row is not None and found.row.aggregate_version >= version:
                return found, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return found, False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.2)

    async def orders(
        self, *, customer: str | None, status: str | None, cursor: str | None, limit: int
    ) -> Page[OrderRow]:
        """Orders newest first, of one customer and/or in one status (or all)."""
        parts = ["orders"]
        parts += [f"customer:{customer}"] if customer else []
        parts += [f"status:{status}"] if status else []
        if len(parts) == 1:
            parts.append("all")
        walk = Range(":".join(parts), descending=True, bound="-inf")
        return await self._page(OrderRow, walk, cursor=cursor, limit=limit)

    async def in_progress(self, statuses: Sequence[str], *, cutoff_ms: float) -> list[InProgress]:
        """Per status: the orders in it, the oldest placement, how many were placed at or
        before `cutoff_ms` (epoch ms). Three sorted-set reads per status, one round trip."""
        gen = await self._generation()
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in statuses:
                key = gen.key(f"orders:status:{status}")
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)
                pipe.zcount(key, "-inf", _score(float(cutoff_ms)))
            replies = await pipe.execute()
        found: list[InProgress] = []
        for index, status in enumerate(statuses):
            count, oldest, old = replies[3 * index : 3 * index + 3]
            first = float(oldest[0][1]) if oldest else None
            found.append(InProgress(status, int(count), first, int(old)))
        return found

    async def low_stock(
        self, *, below: int | None, cursor: str | None, limit: int
    ) -> Page[StockRow]:
        """SKUs with fewer than `below` available (None: every SKU), lowest first."""
        bound = "+inf" if below is None else f"({below}"
        walk = Range("stock:low", descending=False, bound=bound)
        return await self._page(StockRow, walk, cursor=cursor, limit=limit)

    async def _page(self, cls: type[R], walk: Range, *, cursor: str | None, limit: int) -> Page[R]:
        after = Cursor.decode(cursor) if cursor else None
        gen = await self._generation()
        entries = await self._entries(gen.key(walk.key), walk, after, limit + 1)
        members = [member for member, _ in entries[:limit]]
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hgetall(gen.key(f"{cls.kind}:{member}"))
            pipe.hgetall(gen.meta)
            *stored, meta = await pipe.execute()
        items = [from_hash(cls, m, s) for m, s in zip(members, stored, strict=True) if s]
        next_cursor = None
        if len(entries) > limit:
            member, score = entries[limit - 1]
            next_cursor = Cursor(score, member).encode()
        return Page(items, next_cursor, _freshness(meta))

    async def _entries(
        self, key: str, walk: Range, after: Cursor | None, count: int
    ) -> list[tuple[str, float]]:
        """Up to `count` (member, score) pairs strictly after `after` in the walk's order."""
        near = "+inf" if walk.descending else "-inf"
        ties: list[tuple[str, float]] = []
        if after is not None:
            at = _score(after.score)
            same = await self._range(key, at, at, walk.descending, None)
            ties = [(m, s) for m, s in same if _beyond(m, after.member, walk.descending)]
            near = f"({at}"
        rest = await self._range(key, near, walk.bound, walk.descending, count - len(ties))
        return (ties + rest)[:count]

    async def _range(
        self, key: str, start: str, stop: str, descending: bool, count: int | None
    ) -> list[tuple[str, float]]:
        if count is not None and count <= 0:
            return []
        extra: dict[str, Any] = {"offset": 0, "num": count} if count is not None else {}
        found: list[Any] = await self._redis.zrange(
            key, start, stop, desc=descending, byscore=True, withscores=True, **extra
        )
        return [(str(member), float(score)) for member, score in found]


def _beyond(member: str, cursor: str, descending: bool) -> bool:
    """Whether `member` comes after `cursor` among equal scores (Redis orders them by member)."""
    return member < cursor if descending else member > cursor


def _score(score: float) -> str:
    return str(int(score)) if score.is_integer() else repr(score)


def _freshness(meta: dict[str, str]) -> Freshness:
    lag = meta.get("projection_lag_ms")
    return Freshness(meta.get("last_event_at"), meta.get("applied_at"), int(lag) if lag else None)
