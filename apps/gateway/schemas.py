"""Request and response models of the public API, with the examples OpenAPI shows.

Requests are strict (a quantity "5" or 5.0 is refused, unknown fields too) and reuse the
domain's limits and id shapes; views are tolerant readers of what the actors answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Body, Path
from fastapi.openapi.models import Example
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from actors.inventory.model import MAX_QUANTITY as MAX_RESTOCK
from actors.order.model import MAX_LINES, MAX_QUANTITY, MAX_UNIT_PRICE, Status
from actors.order.saga import Reason
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.ids import (
    CUSTOMER_ID_PATTERN,
    ORDER_ID_PATTERN,
    SKU_PATTERN,
    CustomerId,
    Sku,
)
from actors.wallet.model import MAX_DEPOSIT

DEFAULT_CANCEL_REASON: Final = "cancelled by customer"

# --- path parameters ------------------------------------------------------------------------

SkuPath = Annotated[
    str, Path(pattern=SKU_PATTERN, description="Stock keeping unit", examples=["tea-green-100g"])
]
CustomerIdPath = Annotated[
    str, Path(pattern=CUSTOMER_ID_PATTERN, description="Customer id", examples=["cust-42"])
]
OrderIdPath = Annotated[
    str,
    Path(
        pattern=ORDER_ID_PATTERN,
        description="Order id, as answered in Location by POST /orders",
        examples=["ord-5f1c0e9a7b3d2c4e6f8a0b1c"],
    ),
]


def _request_config(examples: dict[str, Example]) -> ConfigDict:
    values = [example["value"] for example in examples.values()]
    return ConfigDict(
        extra="forbid", frozen=True, strict=True, json_schema_extra={"examples": values}
    )


def _view_config(*values: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="ignore", frozen=True, json_schema_extra={"examples": list(values)})


# --- requests -------------------------------------------------------------------------------


class OrderLine(BaseModel):
    model_config = _request_config(
        {"line": {"value": {"sku": "tea-green-100g", "quantity": 2, "unit_price": 450}}}
    )

    sku: Sku
    quantity: int = Field(gt=0, le=MAX_QUANTITY)
    unit_price: int = Field(gt=0, le=MAX_UNIT_PRICE, description="minor units (cents)")


def _one_line_per_sku(lines: list[OrderLine]) -> list[OrderLine]:
    skus = [line.sku for line in lines]
    repeated = sorted({sku for sku in skus if skus.count(sku) > 1})
    if repeated:
        raise ValueError(f"each SKU may appear on one line only; repeated: {', '.join(repeated)}")
    return lines


PLACE_ORDER_EXAMPLES: Final[dict[str, Example]] = {
    "two_lines": {
        "summary": "Two lines",
        "value": {
            "customer_id": "cust-42",
            "lines": [
                {"sku": "tea-green-100g", "quantity": 2, "unit_price": 450},
                {"sku": "mug-white", "quantity": 1, "unit_price": 1200},
            ],
        },
    },
    "one_line": {
        "summary": "One line",
        "value": {
            "customer_id": "cust-7",
            "lines": [{"sku": "kettle-steel", "quantity": 1, "unit_price": 3999}],
        },
    },
}
CANCEL_EXAMPLES: Final[dict[str, Example]] = {
    "with_reason": {"summary": "With a reason", "value": {"reason": "ordered the wrong size"}},
    "default_reason": {"summary": "Default reason", "value": {}},
}
RESTOCK_EXAMPLES: Final[dict[str, Example]] = {
    "hundred": {"summary": "A delivery of 100", "value": {"quantity": 100}}
}
DEPOSIT_EXAMPLES: Final[dict[str, Example]] = {
    "top_up": {"summary": "250.00 in cents", "value": {"amount": 25_000}}
}


class PlaceOrderRequest(BaseModel):
    model_config = _request_config(PLACE_ORDER_EXAMPLES)

    customer_id: CustomerId
    lines: Annotated[
        list[OrderLine],
        Field(min_length=1, max_length=MAX_LINES),
        AfterValidator(_one_line_per_sku),
    ]


class CancelOrderRequest(BaseModel):
    model_config = _request_config(CANCEL_EXAMPLES)

    reason: Reason = DEFAULT_CANCEL_REASON


class RestockRequest(BaseModel):
    model_config = _request_config(RESTOCK_EXAMPLES)

    quantity: int = Field(gt=0, le=MAX_RESTOCK)


class DepositRequest(BaseModel):
    model_config = _request_config(DEPOSIT_EXAMPLES)

    amount: int = Field(gt=0, le=MAX_DEPOSIT, description="minor units (cents)")


# Request bodies with the examples shown per media type (Swagger UI's example picker).
PlaceOrderBody = Annotated[PlaceOrderRequest, Body(openapi_examples=PLACE_ORDER_EXAMPLES)]
CancelOrderBody = Annotated[CancelOrderRequest | None, Body(openapi_examples=CANCEL_EXAMPLES)]
RestockBody = Annotated[RestockRequest, Body(openapi_examples=RESTOCK_EXAMPLES)]
DepositBody = Annotated[DepositRequest, Body(openapi_examples=DEPOSIT_EXAMPLES)]


# --- views ----------------------------------------------------------------------------------


class OrderLineView(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sku: str
    quantity: int
    unit_price: int


class OrderView(BaseModel):
    model_config = _view_config(
        {
            "order_id": "ord-5f1c0e9a7b3d2c4e6f8a0b1c",
            "status": "reserving",
            "customer_id": "cust-42",
            "lines": [{"sku": "tea-green-100g", "quantity": 2, "unit_price": 450}],
            "total": 900,
            "reserved_skus": [],
            "cancel_reason": None,
        }
    )

    order_id: str
    status: Status
    customer_id: str
    lines: list[OrderLineView]
    total: int
    reserved_skus: list[str] = []
    cancel_reason: str | None = None


class InventoryView(BaseModel):
    model_config = _view_config(
        {"sku": "tea-green-100g", "on_hand": 100, "reserved": 2, "available": 98}
    )

    sku: str
    on_hand: int
    reserved: int
    available: int


class WalletView(BaseModel):
    model_config = _view_config(
        {"customer_id": "cust-42", "balance": 25_000, "held": 900, "available": 24_100}
    )

    customer_id: str
    balance: int
    held: int
    available: int


class HistoryPage(BaseModel):
    """One page of an actor's event log, oldest first; `next_after` is the next cursor."""

    model_config = _view_config(
        {
            "events": [
                {
                    "event_id": "0f8e7d6c5b4a39281706f5e4d3c2b1a0",
                    "type": "inventory.stock_restocked",
                    "schema_version": 1,
                    "aggregate_type": "InventoryActor",
                    "aggregate_id": "tea-green-100g",
                    "aggregate_version": 1,
                    "occurred_at": "2025-01-01T12:00:00Z",
                    "correlation_id": "",
                    "causation_id": "restock-1",
                    "traceparent": "",
                    "payload": {"sku": "tea-green-100g", "quantity": 100},
                }
            ],
            "next_after": None,
        }
    )

    events: list[EventEnvelope]
    next_after: int | None = None
