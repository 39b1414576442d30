"""The event router's table: which events become which actor method calls.

topic      event type                 -> actor (id taken from)          method
restocks   inventory.stock_received   -> InventoryActor (payload.sku)   Restock
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from actors.contracts import inbound
from actors.inventory import model as inventory
from actors.inventory.actor import TOPIC as INVENTORY_TOPIC
from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.router import Delivery, EventRouter, Route

INVENTORY = "InventoryActor"


def _restock(_: EventEnvelope, event: inbound.StockReceived) -> Iterable[Delivery]:
    yield Delivery(INVENTORY, event.sku, "Restock", {"quantity": event.quantity})


ROUTES: Final = (Route(inbound.RESTOCKS, inbound.StockReceived, _restock),)

KNOWN_EVENTS: Final[dict[str, dict[str, type[Event]]]] = {
    **inbound.TOPICS,
    INVENTORY_TOPIC: dict(inventory.EVENTS),
}


def build_router() -> EventRouter:
    return EventRouter(ROUTES, known=KNOWN_EVENTS)
