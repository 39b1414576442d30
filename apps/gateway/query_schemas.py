"""Response models of the queries served from read models, each saying how fresh it is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.order.model import Status
from apps.gateway.schemas import InventoryView, OrderLineView, WalletView

Consistency = Literal["eventual", "strong"]

FRESHNESS_EXAMPLE: dict[str, Any] = {
    "last_event_at": "2026-11-22T10:15:02.120000Z",
    "lag_ms": 35,
    "projection_lag_ms": 4,
}


def _config(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(frozen=True, json_schema_extra={"examples": list(examples)})


class Freshness(BaseModel):
    """How far the read models have got; `null`s until the projector applied an event."""

    model_config = _config(FRESHNESS_EXAMPLE)

    last_event_at: str | None = Field(
        description="occurred_at of the newest event reflected in the read models (UTC)"
    )
    lag_ms: int | None = Field(
        description="now - last_event_at: how old the newest change in this answer can be"
    )
    projection_lag_ms: int | None = Field(
        description="how long after it occurred that event was applied (the projector's lag)"
    )


class OrderSummary(BaseModel):
    model_config = _config(
        {
            "order_id": "ord-5f1c0e9a7b3d2c4e6f8a0b1c",
            "status": "shipped",
            "customer_id": "cust-42",
            "lines": [{"sku": "tea-green-100g", "quantity": 2, "unit_price": 450}],
            "total": 900,
            "reserved_skus": ["tea-green-100g"],
            "cancel_reason": None,
            "created_at": "2026-11-22T10:15:01.870000Z",
            "updated_at": "2026-11-22T10:15:02.120000Z",
            "aggregate_version": 5,
        }
    )

    order_id: str
    status: Status | None = Field(description="null until the projector saw a status event")
    customer_id: str
    lines: list[OrderLineView]
    total: int
    reserved_skus: list[str]
    cancel_reason: str | None
    created_at: str | None = Field(description="when the order was placed (UTC)")
    updated_at: str | None = Field(description="occurred_at of its newest event applied")
    aggregate_version: int = Field(description="every event up to this version is applied")


class OrderRead(OrderSummary):
    """GET /orders/{id}?min_version=n: the read model's order (or the actor's, see below)."""

    consistency: Consistency
    stale: bool = Field(description="true when the read model had not reached min_version")
    freshness: Freshness | None


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: done")
    freshness: Freshness


class StockLevel(InventoryView):
    aggregate_version: int
    updated_at: str | None


class StockPage(BaseModel):
    items: list[StockLevel]
    next_cursor: str | None
    freshness: Freshness


class WalletBalance(WalletView):
    """A wallet from the read model (default) or, with consistency=strong, from its actor."""

    model_config = _config(
        {
            "customer_id": "cust-42",
            "balance": 24_100,
            "held": 0,
            "available": 24_100,
            "aggregate_version": 3,
            "consistency": "eventual",
            "freshness": FRESHNESS_EXAMPLE,
        }
    )

    aggregate_version: int
    consistency: Consistency
    freshness: Freshness | None = Field(description="null for a strong (actor) read")
