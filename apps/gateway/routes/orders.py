"""Orders: place (idempotent by key), read (optionally long-polling), cancel, history."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Final

import anyio
from fastapi import APIRouter, Query, Response

from actors.order.model import TERMINAL, Line
from actors.order.saga import Cancel, Place
from actors.toolkit import logs
from actors.toolkit.client import TypedClient
from apps.gateway.deps import (
    REQUIRED_KEY_DOC,
    IdempotencyKey,
    OptionalIdempotencyKey,
    OptionalReadSide,
    Orders,
    message_id_for,
    require_read_models,
)
from apps.gateway.problems import RequestProblemError, problem_responses
from apps.gateway.query_schemas import OrderRead
from apps.gateway.routes.history import DESCRIPTION, History
from apps.gateway.routes.queries import order_at_least, order_from_actor
from apps.gateway.schemas import (
    CancelOrderBody,
    CancelOrderRequest,
    HistoryPage,
    OrderIdPath,
    OrderLine,
    OrderView,
    PlaceOrderBody,
)
from readmodels.queries import ReadModels

# The order's version after a write: pass it as GET /orders/{id}?min_version= to read it back.
VERSION_HEADER: Final = "Aggregate-Version"
MAX_WAIT_SECONDS: Final = 30.0
POLL_START_SECONDS: Final = 0.05
POLL_CAP_SECONDS: Final = 0.5

log = logging.getLogger("orderflow.gateway")
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
        "`Location` names the order to poll, `Aggregate-Version` its version (for "
        "`GET /orders/{id}?min_version=`). Repeating the request with the same "
        "Idempotency-Key and body answers the same order; a different body is a 409."
    ),
    responses=problem_responses(400, 409, 413),
    openapi_extra=REQUIRED_KEY_DOC,
)
async def place_order(
    body: PlaceOrderBody, key: IdempotencyKey, orders: Orders, response: Response
) -> OrderView:
    order_id = order_id_for(body.customer_id, key)
    logs.annotate(order_id=order_id, correlation_id=order_id)
    place = Place(
        customer_id=body.customer_id,
        lines=tuple(Line(**line.model_dump()) for line in body.lines),
    )
    answer = await orders.send(order_id, place, message_id=place_message_id(order_id, body.lines))
    response.headers["Location"] = f"{router.prefix}/{order_id}"
    response.headers[VERSION_HEADER] = str(answer.aggregate_version)
    view = OrderView.model_validate(answer.result)
    repeat = " (a repeat of the same request)" if answer.duplicate else ""
    log.info("order accepted for %s, status %s%s", body.customer_id, view.status, repeat)
    return view


Wait = Annotated[
    float | None,
    Query(
        gt=0,
        le=MAX_WAIT_SECONDS,
        description="Long-poll: wait up to this many seconds for a terminal status",
    ),
]


MinVersion = Annotated[
    int | None,
    Query(
        ge=1,
        description=(
            "Read-your-writes from the read model: wait (up to 2 s) until it has applied "
            "this aggregate version"
        ),
    ),
]


@router.get(
    "/{order_id}",
    summary="Read an order",
    description=(
        "From the order actor (strongly consistent). With `wait`, re-reads the order until "
        "it is shipped or cancelled or the time is up, then answers the latest view (200 "
        "either way). With `min_version` (e.g. the `aggregate_version` a write answered), "
        "answers from the read model once it has applied that version; if it has not within "
        "2 s, its latest row with `stale: true`; an order it has never seen comes from the "
        "actor (`consistency: strong`)."
    ),
    responses=problem_responses(404),
)
async def get_order(
    order_id: OrderIdPath,
    orders: Orders,
    read: OptionalReadSide,
    wait: Wait = None,
    min_version: MinVersion = None,
) -> OrderView | OrderRead:
    logs.annotate(order_id=order_id, correlation_id=order_id)
    if min_version is not None:
        if wait is not None:
            raise RequestProblemError(422, "request.invalid", "use wait or min_version, not both")
        return await _read_your_writes(require_read_models(read), orders, order_id, min_version)
    view = OrderView.model_validate((await orders.get(order_id)).result)
    if wait is None:
        return view
    return await _until_terminal(orders, view, wait)


async def _read_your_writes(
    read: ReadModels, orders: TypedClient, order_id: str, version: int
) -> OrderRead:
    found, _ = await order_at_least(read, order_id, version)
    if found is not None:
        return found
    answer = await orders.get(order_id)
    return order_from_actor(OrderView.model_validate(answer.result), answer.aggregate_version)


async def _until_terminal(orders: TypedClient, view: OrderView, wait: float) -> OrderView:
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
    response: Response,
    body: CancelOrderBody = None,
) -> OrderView:
    logs.annotate(order_id=order_id, correlation_id=order_id)
    reason = (body or CancelOrderRequest()).reason
    answer = await orders.send(order_id, Cancel(reason=reason), message_id=message_id_for(key))
    response.headers[VERSION_HEADER] = str(answer.aggregate_version)
    view = OrderView.model_validate(answer.result)
    log.info("cancel requested by the customer, status %s", view.status)
    return view


@router.get(
    "/{order_id}/history",
    summary="An order's events",
    description=DESCRIPTION,
    responses=problem_responses(404),
)
async def order_history(order_id: OrderIdPath, orders: Orders, history: History) -> HistoryPage:
    return await history.page(orders, order_id)
