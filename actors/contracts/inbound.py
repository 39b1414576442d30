"""Inbound event contracts: what the warehouse, payments and shipping services publish.

Each is the `payload` of an EventEnvelope (actors.toolkit.envelope) published as a
CloudEvent to the named topic. Readers are tolerant (`extra="ignore"`): a sender may add
fields without breaking us; a breaking change needs a new schema version.

    topic       type                        payload
    restocks    inventory.stock_received    sku, quantity
    deposits    wallet.funds_deposited      customer_id, amount (minor units)
    shipments   shipment.dispatched         order_id, shipment_id
    shipments   shipment.failed             order_id, reason
"""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import ConfigDict, Field

from actors.catalog import DEPOSITS, RESTOCKS, SHIPMENTS
from actors.inventory.model import MAX_QUANTITY
from actors.toolkit.domain import Event, event_types
from actors.toolkit.ids import CustomerId, OrderId, Sku
from actors.wallet.model import MAX_DEPOSIT


class InboundEvent(Event):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StockReceived(InboundEvent):
    type: ClassVar[str] = "inventory.stock_received"
    sku: Sku
    quantity: int = Field(gt=0, le=MAX_QUANTITY)


class FundsDeposited(InboundEvent):
    type: ClassVar[str] = "wallet.funds_deposited"
    customer_id: CustomerId
    amount: int = Field(gt=0, le=MAX_DEPOSIT)


class ShipmentDispatched(InboundEvent):
    type: ClassVar[str] = "shipment.dispatched"
    order_id: OrderId
    shipment_id: str = Field(min_length=1, max_length=128)


class ShipmentFailed(InboundEvent):
    type: ClassVar[str] = "shipment.failed"
    order_id: OrderId
    reason: str = Field(min_length=1, max_length=200)


TOPICS: Final[dict[str, dict[str, type[Event]]]] = {
    RESTOCKS: event_types(StockReceived),
    DEPOSITS: event_types(FundsDeposited),
    SHIPMENTS: event_types(ShipmentDispatched, ShipmentFailed),
}
