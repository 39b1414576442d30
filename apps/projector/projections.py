"""Projection: (read-model row, event envelope) -> new row, index entries, counters. Pure.

Idempotent and order-safe, so any delivery order with any duplicates ends in the state
in-order application gives:
- an event is applied once: a version the row has applied (watermark or applied_above)
  is a duplicate and changes nothing, counters included;
- stock and wallet events carry deltas, and deltas commute;
- an order's status is set only by a version above the one that set it last, so a late
  older status never overwrites a newer one; every other order field is set by one
  event type (placed: lines, total, created_at), or is a union (reserved_skus), or a
  maximum (updated_at).
The batch fold (apps.projector.batch) calls `fold` per event of each row of a delivery;
the Redis adapter (apps.projector.store) reads the rows and writes the result.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from actors import catalog
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.errors import PermanentError
from readmodels.rows import LineRow, OrderRow, Row, StockRow, WalletRow, iso, parse_iso

TOPICS: Final = {
    catalog.ORDERS: catalog.ORDER_ACTOR,
    catalog.INVENTORY: catalog.INVENTORY_ACTOR,
    catalog.WALLET: catalog.WALLET_ACTOR,
}
ROW_TYPES: Final[dict[str, type[Row]]] = {
    catalog.ORDER_ACTOR: OrderRow,
    catalog.INVENTORY_ACTOR: StockRow,
    catalog.WALLET_ACTOR: WalletRow,
}
COUNTED: Final = {
    "order.placed": "placed",
    "order.confirmed": "confirmed",
    "order.cancelled": "cancelled",
    "order.shipped": "shipped",
}
MINUTE_FORMAT: Final = "%Y-%m-%dT%H:%M"


class InvalidEventError(PermanentError):
    """An event of a projected type whose payload cannot be read."""


class Payload(BaseModel):
    """What projections read from a payload (tolerant: unknown fields are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    customer_id: str = ""
    lines: tuple[LineRow, ...] = ()
    total: int = 0
    sku: str = ""
    quantity: int = 0
    amount: int = 0
    reason: str = ""


Apply = Callable[[Any, Payload, EventEnvelope], dict[str, Any]]


def _status(row: OrderRow, status: str, env: EventEnvelope) -> dict[str, Any]:
    if env.aggregate_version <= row.status_version:
        return {}
    return {"status": status, "status_version": env.aggregate_version}


def _customer(p: Payload) -> dict[str, Any]:
    return {"customer_id": p.customer_id} if p.customer_id else {}


def _placed(row: OrderRow, p: Payload, env: EventEnvelope) -> dict[str, Any]:
    placed = {"lines": p.lines, "total": p.total, "created_at": iso(env.occurred_at)}
    return {**_status(row, "reserving", env), **_customer(p), **placed}


def _line_reserved(row: OrderRow, p: Payload, env: EventEnvelope) -> dict[str, Any]:
    return {"reserved_skus": tuple(sorted({*row.reserved_skus, p.sku}))}


def _moves_to(status: str) -> Apply:
    def apply(row: OrderRow, p: Payload, env: EventEnvelope) -> dict[str, Any]:
        return {**_status(row, status, env), **_customer(p)}

    return apply


def _cancelled(row: OrderRow, p: Payload, env: EventEnvelope) -> dict[str, Any]:
    return {**_status(row, "cancelled", env), **_customer(p), "cancel_reason": p.reason}


def _stock(on_hand: int, reserved: int) -> Apply:
    def apply(row: StockRow, p: Payload, env: EventEnvelope) -> dict[str, Any]:
        return {
            "on_hand": row.on_hand + on_hand * p.quantity,
            "reserved": row.reserved + reserved * p.quantity,
        }

    return apply


def _money(balance: int, held: int) -> Apply:
    def apply(row: WalletRow, p: Payload, env: EventEnvelope) -> dict[str, Any]:
        return {"balance": row.balance + balance * p.amount, "held": row.held + held * p.amount}

    return apply


def _nothing(row: Row, p: Payload, env: EventEnvelope) -> dict[str, Any]:
    return {}


HANDLERS: Final[dict[str, Apply]] = {
    "order.placed": _placed,
    "order.line_reserved": _line_reserved,
    "order.payment_requested": _moves_to("authorizing"),
    "order.confirmed": _moves_to("confirmed"),
    "order.shipped": _moves_to("shipped"),
    "order.cancelled": _cancelled,
    "order.late_reservation_released": _nothing,
    "order.late_payment_voided": _nothing,
    "inventory.stock_restocked": _stock(on_hand=1, reserved=0),
    "inventory.stock_reserved": _stock(on_hand=0, reserved=1),
    "inventory.stock_rejected": _nothing,
    "inventory.stock_released": _stock(on_hand=0, reserved=-1),
    "inventory.stock_committed": _stock(on_hand=-1, reserved=-1),
    "wallet.funds_credited": _money(balance=1, held=0),
    "wallet.payment_authorized": _money(balance=0, held=1),
    "wallet.payment_declined": _nothing,
    "wallet.payment_voided": _money(balance=0, held=-1),
    "wallet.payment_captured": _money(balance=-1, held=-1),
}


# Fields an event must carry for its projection (the payload is read tolerantly otherwise).
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "order.placed": ("customer_id", "lines", "total"),
    "order.line_reserved": ("sku",),
    "order.cancelled": ("reason",),
    **{name: ("quantity",) for name in HANDLERS if name.startswith("inventory.")},
    **{name: ("amount",) for name in HANDLERS if name.startswith("wallet.")},
}


def projects(topic: str, envelope: EventEnvelope) -> bool:
    """Whether this event, delivered on `topic`, feeds a read model."""
    return TOPICS.get(topic) == envelope.aggregate_type and envelope.type in HANDLERS


def empty_row(envelope: EventEnvelope) -> Row:
    """The row of the envelope's aggregate before any event was applied."""
    return ROW_TYPES[envelope.aggregate_type].model_validate(
        {ROW_TYPES[envelope.aggregate_type].id_field: envelope.aggregate_id}
    )


def minute_of(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(MINUTE_FORMAT)


def read_payload(envelope: EventEnvelope) -> Payload:
    """The fields projections use; raises InvalidEventError when one is missing or wrong."""
    missing = [name for name in REQUIRED.get(envelope.type, ()) if name not in envelope.payload]
    if missing:
        raise InvalidEventError(f"{envelope.type}: payload lacks {', '.join(missing)}")
    try:
        return Payload.model_validate(envelope.payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidEventError(f"{envelope.type}: {where}: {first['msg']}") from exc


@dataclass(frozen=True)
class Step:
    """One envelope against one row."""

    row: Row
    applied: bool  # False: a duplicate, nothing changed
    out_of_order: bool = False  # applied ahead of a gap in the versions
    counter: str | None = None  # the per-minute counter it increments, if any


def project(row: Row, envelope: EventEnvelope) -> Step:
    """Apply `envelope` to `row` (its aggregate's row); a seen version changes nothing."""
    version = envelope.aggregate_version
    if row.has_applied(version):
        return Step(row, applied=False)
    payload = read_payload(envelope)
    update = HANDLERS[envelope.type](row, payload, envelope)
    occurred = iso(envelope.occurred_at)
    update.update(row.tracking_after(version), updated_at=max(row.updated_at, occurred))
    new_row = row.model_validate({**row.model_dump(), **update})
    return Step(
        new_row,
        applied=True,
        out_of_order=version != row.aggregate_version + 1,
        counter=COUNTED.get(envelope.type),
    )


@dataclass(frozen=True)
class Projection:
    """Several envelopes of one aggregate folded into its row."""

    before: Row
    after: Row
    applied: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (minute, name)


def fold(row: Row, envelopes: Iterable[EventEnvelope]) -> Projection:
    """Apply every envelope in turn (any order, any repeats: the result is the same)."""
    after, applied, duplicates, out_of_order = row, 0, 0, 0
    counts: Counter[tuple[str, str]] = Counter()
    for envelope in envelopes:
        step = project(after, envelope)
        after = step.row
        applied += step.applied
        duplicates += not step.applied
        out_of_order += step.out_of_order
        if step.counter is not None:
            counts[(minute_of(envelope.occurred_at), step.counter)] += 1
    return Projection(row, after, applied, duplicates, out_of_order, counts)


# --- indexes -----------------------------------------------------------------------------------

Entries = dict[tuple[str, str], float]  # (index key suffix, member) -> score


def index_entries(row: Row) -> Entries:
    """The sorted-set entries that list this row."""
    if not row.stored:
        return {}
    if isinstance(row, StockRow):
        return {("stock:low", row.sku): float(row.available)}
    if not isinstance(row, OrderRow) or not row.created_at or not row.customer_id:
        return {}
    score = float(int(parse_iso(row.created_at).timestamp() * 1000))
    keys = ["orders:all", f"orders:customer:{row.customer_id}"]
    if row.status:
        keys += [
            f"orders:status:{row.status}",
            f"orders:customer:{row.customer_id}:status:{row.status}",
        ]
    return {(key, row.order_id): score for key in keys}


@dataclass(frozen=True)
class IndexChanges:
    removed: tuple[tuple[str, str], ...]  # (key suffix, member)
    added: tuple[tuple[str, str, float], ...]  # (key suffix, member, score)


def index_changes(before: Row, after: Row) -> IndexChanges:
    """What moves in the sorted sets when `before` becomes `after`."""
    old, new = index_entries(before), index_entries(after)
    removed = tuple(entry for entry in old if entry not in new)
    added = tuple(
        (key, member, score)
        for (key, member), score in new.items()
        if old.get((key, member)) != score
    )
    return IndexChanges(removed, added)
