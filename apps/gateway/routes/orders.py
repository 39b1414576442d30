"""Orders: place (idempotent by key), read (optionally long-polling), cancel, history."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Final

import anyio
from fastapi import APIRouter, Query, Request, Response

from actors.order.client import OrderClient
from actors.order.saga import TERMINAL
from apps.gateway.deps import (
    REQUIRED_KEY_DOC,
    IdempotencyKey,
    OptionalIdempotencyKey,
    Orders,
    message_id_for,
)
from apps.gateway.problems import problem_responses
from apps.gateway.routes.history import DEFAULT_PAGE, DESCRIPTION, After, Limit, history_page
from apps.gateway.schemas import (
    CancelOrderBody,
    CancelOrderRequest,
    HistoryPage,
    OrderIdPath,
    OrderLine,
    OrderView,
    PlaceOrderBody,
)

MAX_WAIT_SECONDS: Final = 30.0
POLL_START_SECONDS: Final = 0.05
POLL_CAP_SECONDS: Final = 0.5

router = APIRouter(prefix="/orders", tags=["orders"])


def order_id_for(customer_id: str, key: str) -> str:
    """The order a customer's Idempotency-Key names: the same key always names the same one."""
    digest = hashlib.sha256(f"{customer_id}\n{key}".encode()).hexdigest()
    return "ord-" + digest[:24]


def place_message_id(order_id: str, lines: list[OrderLine]) -> str:
    """The Place message id: the order plus a fingerprint of its lines (in any order).

    The actor's inbox answers a message id it has seen without deciding again, so with
    "place-{order_id}" alone a changed body would get the first answer instead of a 409.
    """
    canonical = json.dumps(sorted((line.sku, line.quantity, line.unit_price) for line in lines))
    return f"place-{order_id}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


@router.post(
    "",
    status_code=202,
    summary="Place an order",
    description=(
        "Starts the fulfilment saga and answers at once (202) with the order as it stands; "
        "`Location` names the order to poll. Repeating the request with the same "
        "Idempotency-Key and body answers the same order; a different body is a 409."
    ),
    responses=problem_responses(400, 409, 413),
    openapi_extra=REQUIRED_KEY_DOC,
)
async def place_order(
    body: PlaceOrderBody, key: IdempotencyKey, orders: Orders, response: Response
) -> OrderView:
    order_id = order_id_for(body.customer_id, key)
    answer = await orders.place(
        order_id,
        customer_id=body.customer_id,
        lines=[line.model_dump() for line in body.lines],
        message_id=place_message_id(order_id, body.lines),
    )
    response.headers["Location"] = f"{router.prefix}/{order_id}"
    return OrderView.model_validate(answer.result)


Wait = Annotated[
    float | None,
    Query(
        gt=0,
        le=MAX_WAIT_SECONDS,
        description="Long-poll: wait up to this many seconds for a terminal status",
    ),
]


@router.get(
    "/{order_id}",
    summary="Read an order",
    description=(
        "With `wait`, re-reads the order until it is shipped or cancelled or the time is up, "
        "then answers the latest view (200 either way)."
    ),
    responses=problem_responses(404),
)
async def get_order(order_id: OrderIdPath, orders: Orders, wait: Wait = None) -> OrderView:
    view = OrderView.model_validate((await orders.get(order_id)).result)
    if wait is None:
        return view
    return await _until_terminal(orders, view, wait)


async def _until_terminal(orders: OrderClient, view: OrderView, wait: float) -> OrderView:
    deadline = anyio.current_time() + wait
    delay = POLL_START_SECONDS
    while view.status not in TERMINAL:
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            break
        await anyio.sleep(min(delay, remaining))
        delay = min(delay * 2, POLL_CAP_SECONDS)
        view = OrderView.model_validate((await orders.get(view.order_id)).result)
    return view


@router.post(
    "/{order_id}/cancel",
    summary="Cancel an order",
    description=(
        "Cancelling a cancelled order changes nothing; an order that has shipped (or that "
        "the shipping partner already has) answers 409."
    ),
    responses=problem_responses(404, 409, 413),
)
async def cancel_order(
    order_id: OrderIdPath,
    orders: Orders,
    key: OptionalIdempotencyKey,
    body: CancelOrderBody = None,
) -> OrderView:
    reason = (body or CancelOrderRequest()).reason
    answer = await orders.cancel(order_id, reason=reason, message_id=message_id_for(key))
    return OrderView.model_validate(answer.result)


@router.get(
    "/{order_id}/history",
    summary="An order's events",
    description=DESCRIPTION,
    responses=problem_responses(404),
)
async def order_history(
    order_id: OrderIdPath,
    orders: Orders,
    request: Request,
    response: Response,
    after: After = 0,
    limit: Limit = DEFAULT_PAGE,
) -> HistoryPage:
    return await history_page(
        orders, order_id, after=after, limit=limit, request=request, response=response
    )
