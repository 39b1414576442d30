"""Following orders: search (read models), one order's timeline (its actor's History,
read-only), and stuck sagas (orders not terminal after a threshold, from the read models).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Final

from actors.toolkit.client import TypedClient
from readmodels.queries import ReadModels
from readmodels.rows import OrderRow, parse_iso

ID_SHAPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # order and customer ids
MAX_EVENTS: Final = 1000  # a timeline shows at most this many events
# The saga status each order event leaves the order in (display only; the actor decides).
STATUS_AFTER: Final = {
    "order.placed": "reserving",
    "order.payment_requested": "authorizing",
    "order.confirmed": "confirmed",
    "order.shipped": "shipped",
    "order.cancelled": "cancelled",
}
COMPENSATIONS: Final = frozenset(
    {"order.cancelled", "order.late_reservation_released", "order.late_payment_voided"}
)
# What an order in each waiting status waits for.
WAITING: Final = {
    "reserving": "reserving: waiting for stock replies",
    "authorizing": "authorizing: waiting for the wallet",
    "confirmed": "shipping: waiting for the shipping partner",
}


class InvalidQueryError(ValueError):
    """A search that is not an order or customer id."""


@dataclass(frozen=True)
class Entry:
    """One event of an order's timeline."""

    version: int
    occurred_at: str
    type: str
    status_after: str
    compensation: str  # what it undoes ("" when nothing)
    payload: dict[str, Any]
    trace_id: str  # from the envelope's traceparent ("" when none)


@dataclass(frozen=True)
class Timeline:
    order_id: str
    view: dict[str, Any]  # the actor's own view (status, lines, ...)
    entries: list[Entry]
    truncated: bool


@dataclass(frozen=True)
class Stuck:
    row: OrderRow
    waiting_for: str
    idle_s: float


def checked_id(text: str) -> str:
    text = text.strip()
    if not ID_SHAPE.fullmatch(text):
        raise InvalidQueryError(
            f"{text[:80]!r} is not an order or customer id "
            "(1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)"
        )
    return text


def trace_id(traceparent: str | None) -> str:
    """The trace id of a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"), else ""."""
    parts = (traceparent or "").split("-")
    ok = len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32
    return parts[1] if ok and all(c in "0123456789abcdef" for c in parts[1]) else ""


def compensation(event_type: str, payload: dict[str, Any]) -> str:
    if event_type not in COMPENSATIONS:
        return ""
    if event_type == "order.late_reservation_released":
        return f"release the late reservation of {payload.get('sku')}"
    if event_type == "order.late_payment_voided":
        return "void the late payment hold"
    undo = [f"release {sku}" for sku in payload.get("release_skus") or ()]
    undo += ["void the payment hold"] if payload.get("void_payment") else []
    return ", ".join(undo) or "nothing held"


def entry(envelope: dict[str, Any]) -> Entry:
    event_type = str(envelope.get("type", ""))
    payload = envelope.get("payload") or {}
    return Entry(
        version=int(envelope.get("aggregate_version", 0)),
        occurred_at=str(envelope.get("occurred_at", "")),
        type=event_type,
        status_after=STATUS_AFTER.get(event_type, ""),
        compensation=compensation(event_type, payload),
        payload=payload,
        trace_id=trace_id(envelope.get("traceparent")),
    )


async def timeline(orders: TypedClient, order_id: str) -> Timeline:
    """The order's view and every event of its history, oldest first (Get + History only).
    Raises the order's NotFound error for an order never placed."""
    view = (await orders.get(order_id)).result
    envelopes: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None and len(envelopes) < MAX_EVENTS:
        page = (await orders.history(order_id, after=after, limit=100)).result
        envelopes += page.get("events") or []
        after = page.get("next_after")
    entries = sorted((entry(e) for e in envelopes[:MAX_EVENTS]), key=lambda e: e.version)
    return Timeline(order_id, view, entries, truncated=after is not None)


async def search(readmodels: ReadModels, text: str, *, limit: int = 50) -> list[OrderRow]:
    """The order with that id, else the customer's orders (newest first); none: recent."""
    if not text.strip():
        return (await readmodels.orders(customer=None, status=None, cursor=None, limit=limit)).items
    key = checked_id(text)
    found = await readmodels.order(key)
    if found.row is not None:
        return [found.row]
    page = await readmodels.orders(customer=key, status=None, cursor=None, limit=limit)
    return page.items


async def stuck(
    readmodels: ReadModels, *, idle_for: dt.timedelta, now: dt.datetime, scan: int = 500
) -> list[Stuck]:
    """Orders in a waiting status whose last event is older than `idle_for`, longest first."""
    found: list[Stuck] = []
    for status, waiting_for in WAITING.items():
        page = await readmodels.orders(customer=None, status=status, cursor=None, limit=scan)
        for row in page.items:
            if not row.updated_at or row.status != status:
                continue
            idle = (now - parse_iso(row.updated_at)).total_seconds()
            if idle >= idle_for.total_seconds():
                found.append(Stuck(row, _detail(row, waiting_for), idle))
    return sorted(found, key=lambda s: -s.idle_s)


def _detail(row: OrderRow, waiting_for: str) -> str:
    if row.status != "reserving":
        return waiting_for
    missing = sorted({line.sku for line in row.lines} - set(row.reserved_skus))
    return f"{waiting_for} ({', '.join(missing)})" if missing else waiting_for
