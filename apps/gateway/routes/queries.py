"""Queries served from the read models, never from actors: order lists, low stock, balances.

Answers are eventually consistent; each carries `freshness` (apps.gateway.query_schemas).
GET /wallets/{id} and GET /orders/{id}?min_version= use the helpers at the bottom.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Annotated, Final, TypeVar

from fastapi import APIRouter, Query

from actors.order.model import Status
from actors.toolkit.ids import CUSTOMER_ID_PATTERN
from apps.gateway.deps import ReadSide
from apps.gateway.problems import RequestProblemError, problem_responses
from apps.gateway.query_schemas import (
    Freshness,
    OrderPage,
    OrderRead,
    OrderSummary,
    StockLevel,
    StockPage,
    WalletBalance,
)
from apps.gateway.schemas import OrderView
from readmodels import queries as rm
from readmodels.rows import OrderRow, StockRow, WalletRow, parse_iso

T = TypeVar("T")
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200

router = APIRouter(tags=["queries"])

Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page; omit for the first"),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")]
CustomerFilter = Annotated[
    str | None, Query(pattern=CUSTOMER_ID_PATTERN, description="Only this customer's orders")
]
StatusFilter = Annotated[Status | None, Query(description="Only orders in this status")]
Below = Annotated[
    int | None,
    Query(ge=-(10**12), le=10**12, description="Only SKUs with fewer than this many available"),
]


@router.get(
    "/orders",
    summary="List orders (read model)",
    description=(
        "Newest first, optionally one customer's and/or in one status. Page with `cursor`: "
        "every order listed when the walk started is returned exactly once, whatever is "
        "placed meanwhile."
    ),
    responses=problem_responses(400),
)
async def list_orders(
    read: ReadSide,
    customer: CustomerFilter = None,
    status: StatusFilter = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> OrderPage:
    page = await _guarded(
        read.orders(
            customer=customer, status=status.value if status else None, cursor=cursor, limit=limit
        )
    )
    return OrderPage(
        items=[summary(row) for row in page.items],
        next_cursor=page.next_cursor,
        freshness=freshness(page.freshness),
    )


@router.get(
    "/inventory",
    summary="Stock levels, lowest available first (read model)",
    description="With `below`, only SKUs with fewer than that many available (low stock).",
    responses=problem_responses(400),
)
async def list_stock(
    read: ReadSide, below: Below = None, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> StockPage:
    page = await _guarded(read.low_stock(below=below, cursor=cursor, limit=limit))
    return StockPage(
        items=[stock_level(row) for row in page.items],
        next_cursor=page.next_cursor,
        freshness=freshness(page.freshness),
    )


async def _guarded(query: Awaitable[T]) -> T:
    try:
        return await query
    except rm.InvalidCursorError as exc:
        raise RequestProblemError(400, "request.invalid_cursor", str(exc)) from exc


# --- views -------------------------------------------------------------------------------------


def freshness(found: rm.Freshness, *, now: dt.datetime | None = None) -> Freshness:
    now = now or dt.datetime.now(dt.UTC)
    lag = None
    if found.last_event_at:
        lag = max(0, round((now - parse_iso(found.last_event_at)).total_seconds() * 1000))
    return Freshness(
        last_event_at=found.last_event_at, lag_ms=lag, projection_lag_ms=found.projection_lag_ms
    )


def summary(row: OrderRow) -> OrderSummary:
    return OrderSummary.model_validate(
        {
            **row.model_dump(exclude={"lines"}),
            "lines": [line.model_dump() for line in row.lines],
            "status": row.status or None,
            "cancel_reason": row.cancel_reason or None,
            "created_at": row.created_at or None,
            "updated_at": row.updated_at or None,
        }
    )


def stock_level(row: StockRow) -> StockLevel:
    return StockLevel.model_validate({**row.model_dump(), "updated_at": row.updated_at or None})


# --- single reads (wallets and orders routes) -------------------------------------------------


async def wallet_balance(read: rm.ReadModels, customer_id: str) -> WalletBalance:
    """A wallet as the read model has it; one it never saw is empty, as its actor would say."""
    found = await read.wallet(customer_id)
    row = found.row or WalletRow(customer_id=customer_id)
    return WalletBalance.model_validate(
        {**row.model_dump(), "consistency": "eventual", "freshness": freshness(found.freshness)}
    )


async def order_at_least(
    read: rm.ReadModels, order_id: str, version: int
) -> tuple[OrderRead | None, bool]:
    """The order once the read model applied `version` (waits <= 2 s): (view, reached).

    (None, False) when the read model has never seen the order: the caller asks its actor.
    """
    found, reached = await read.order_at_least(order_id, version)
    if found.row is None:
        return None, False
    view = OrderRead.model_validate(
        {
            **summary(found.row).model_dump(),
            "consistency": "eventual",
            "stale": not reached,
            "freshness": freshness(found.freshness),
        }
    )
    return view, reached


def order_from_actor(view: OrderView, version: int) -> OrderRead:
    """The actor's answer in the read model's shape (strong, so never stale)."""
    return OrderRead.model_validate(
        {
            **view.model_dump(),
            "created_at": None,
            "updated_at": None,
            "aggregate_version": version,
            "consistency": "strong",
            "stale": False,
            "freshness": None,
        }
    )
