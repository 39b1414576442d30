"""The event router's table: which events become which actor method calls.

topic      event type                        -> actor (id from)              method
orders     order.placed                      -> InventoryActor (each line)   Reserve
orders     order.payment_requested           -> WalletActor (customer)       Authorize
orders     order.shipped                     -> InventoryActor (each sku)    Commit
                                             -> WalletActor (customer)       Capture
orders     order.cancelled                   -> InventoryActor (each sku)    Release
                                             -> WalletActor (if a hold)      Void
orders     order.late_reservation_released   -> InventoryActor (sku)         Release
orders     order.late_payment_voided         -> WalletActor (customer)       Void
inventory  inventory.stock_reserved          -> OrderActor (order id)        OnStockReserved
inventory  inventory.stock_rejected          -> OrderActor (order id)        OnStockRejected
wallet     wallet.payment_authorized         -> OrderActor (order id)        OnPaymentAuthorized
wallet     wallet.payment_declined           -> OrderActor (order id)        OnPaymentDeclined
shipments  shipment.dispatched               -> OrderActor (order id)        OnShipmentDispatched
shipments  shipment.failed                   -> OrderActor (order id)        OnShipmentFailed
restocks   inventory.stock_received          -> InventoryActor (sku)         Restock
deposits   wallet.funds_deposited            -> WalletActor (customer)       Deposit
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from actors import catalog
from actors.contracts import inbound
from actors.inventory import model as inventory
from actors.inventory.actor import TOPIC as INVENTORY_TOPIC
from actors.order import model as order
from actors.order.actor import TOPIC as ORDERS_TOPIC
from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.router import Deliver, Delivery, EventRouter, Route
from actors.wallet import model as wallet
from actors.wallet.actor import TOPIC as WALLET_TOPIC

INVENTORY, WALLET, ORDER = "InventoryActor", "WalletActor", "OrderActor"
Out = Iterable[Delivery]


def _reserve(env: EventEnvelope, event: order.OrderPlaced) -> Out:
    for line in event.lines:
        yield Delivery(
            INVENTORY,
            line.sku,
            "Reserve",
            {"order_id": env.aggregate_id, "quantity": line.quantity},
        )


def _authorize(env: EventEnvelope, event: order.PaymentRequested) -> Out:
    yield Delivery(
        WALLET,
        event.customer_id,
        "Authorize",
        {"order_id": env.aggregate_id, "amount": event.amount},
    )


def _settle(env: EventEnvelope, event: order.OrderShipped) -> Out:
    for sku in event.commit_skus:
        yield Delivery(INVENTORY, sku, "Commit", {"order_id": env.aggregate_id})
    if event.capture_payment:
        yield Delivery(WALLET, event.customer_id, "Capture", {"order_id": env.aggregate_id})


def _compensate(env: EventEnvelope, event: order.OrderCancelled) -> Out:
    for sku in event.release_skus:
        yield Delivery(INVENTORY, sku, "Release", {"order_id": env.aggregate_id})
    if event.void_payment:
        yield Delivery(WALLET, event.customer_id, "Void", {"order_id": env.aggregate_id})


def _late_release(env: EventEnvelope, event: order.LateReservationReleased) -> Out:
    yield Delivery(INVENTORY, event.sku, "Release", {"order_id": env.aggregate_id})


def _late_void(env: EventEnvelope, event: order.LatePaymentVoided) -> Out:
    yield Delivery(WALLET, event.customer_id, "Void", {"order_id": env.aggregate_id})


def _to_order(method: str, *fields: str) -> Deliver:
    def deliver(_: EventEnvelope, event: Any) -> Out:
        payload = {name: getattr(event, name) for name in fields}
        yield Delivery(ORDER, event.order_id, method, payload)

    return deliver


def _restock(_: EventEnvelope, event: inbound.StockReceived) -> Out:
    yield Delivery(INVENTORY, event.sku, "Restock", {"quantity": event.quantity})


def _deposit(_: EventEnvelope, event: inbound.FundsDeposited) -> Out:
    yield Delivery(WALLET, event.customer_id, "Deposit", {"amount": event.amount})


ROUTES: Final = (
    Route(ORDERS_TOPIC, order.OrderPlaced, _reserve),
    Route(ORDERS_TOPIC, order.PaymentRequested, _authorize),
    Route(ORDERS_TOPIC, order.OrderShipped, _settle),
    Route(ORDERS_TOPIC, order.OrderCancelled, _compensate),
    Route(ORDERS_TOPIC, order.LateReservationReleased, _late_release),
    Route(ORDERS_TOPIC, order.LatePaymentVoided, _late_void),
    Route(INVENTORY_TOPIC, inventory.StockReserved, _to_order("OnStockReserved", "sku")),
    Route(INVENTORY_TOPIC, inventory.StockRejected, _to_order("OnStockRejected", "sku", "reason")),
    Route(WALLET_TOPIC, wallet.PaymentAuthorized, _to_order("OnPaymentAuthorized")),
    Route(WALLET_TOPIC, wallet.PaymentDeclined, _to_order("OnPaymentDeclined", "reason")),
    Route(
        catalog.SHIPMENTS,
        inbound.ShipmentDispatched,
        _to_order("OnShipmentDispatched", "shipment_id"),
    ),
    Route(catalog.SHIPMENTS, inbound.ShipmentFailed, _to_order("OnShipmentFailed", "reason")),
    Route(catalog.RESTOCKS, inbound.StockReceived, _restock),
    Route(catalog.DEPOSITS, inbound.FundsDeposited, _deposit),
)

KNOWN_EVENTS: Final[dict[str, dict[str, type[Event]]]] = {
    **inbound.TOPICS,
    ORDERS_TOPIC: dict(order.EVENTS),
    INVENTORY_TOPIC: dict(inventory.EVENTS),
    WALLET_TOPIC: dict(wallet.EVENTS),
}


def build_router() -> EventRouter:
    return EventRouter(ROUTES, known=KNOWN_EVENTS)
