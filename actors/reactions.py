"""The event router's reactions: which event becomes which command to which actor.

topic      event type                        -> actor (id from)              method
orders     order.placed                      -> InventoryActor (each line)   Reserve
             then, once every Reserve        -> OrderActor (order id)        OnStockOutcomes
             answered, from the answers
             then, if it answered            -> WalletActor (customer)       Authorize
             order.payment_requested
             then, from its answer           -> OrderActor (order id)        OnPaymentAuthorized
                                                                             / OnPaymentDeclined
orders     order.payment_requested           -> WalletActor (customer)       Authorize
             (nothing when a chained OnStockOutcomes caused it)
orders     order.shipped                     -> InventoryActor (each sku)    Commit
                                             -> WalletActor (customer)       Capture
orders     order.cancelled                   -> InventoryActor (each sku)    Release
                                             -> WalletActor (if a hold)      Void
orders     order.late_reservation_released   -> InventoryActor (sku)         Release
orders     order.late_payment_voided         -> WalletActor (customer)       Void
inventory  inventory.stock_reserved          -> OrderActor (order id)        OnStockReserved
inventory  inventory.stock_rejected          -> OrderActor (order id)        OnStockRejected
             (both: nothing when a chained Reserve caused it, causation "<id>/Reserve")
wallet     wallet.payment_authorized         -> OrderActor (order id)        OnPaymentAuthorized
wallet     wallet.payment_declined           -> OrderActor (order id)        OnPaymentDeclined
             (both: nothing when a chained Authorize caused it)
shipments  shipment.dispatched               -> OrderActor (order id)        OnShipmentDispatched
shipments  shipment.failed                   -> OrderActor (order id)        OnShipmentFailed
restocks   inventory.stock_received          -> InventoryActor (sku)         Restock
deposits   wallet.funds_deposited            -> WalletActor (customer)       Deposit

A reaction yields command models; each model's AggregateSpec names the actor type and
the wire method (actors.toolkit.router), so this table holds no method names.

The saga up to its confirmation in one delivery of order.placed. Deciding it, the router
sends the Reserves concurrently (message ids "<placed id>/Reserve", causation ids the
same: the marker) and, once all answered, ONE OnStockOutcomes ("<placed id>/
OnStockOutcomes", marked too) built from the answers of those answered ok: the stock
event each names (with a rejection's reason), or none, which inventory answers only when
the order already holds (or held and committed) stock of the SKU: reserved. If the order
answers order.payment_requested, the router sends the Authorize it asks for ("<requested
id>/Authorize", marked) and then, from the wallet's answer, OnPaymentAuthorized or
OnPaymentDeclined with its reason ("<authorized or declined id>/<method>"). Each of these
message ids is the one the router gives the call when it routes the event off its topic,
so whichever path comes second is answered from an inbox. A call that fails transiently
makes the delivery RETRY: order.placed is redelivered, the calls made are answered from
the inboxes with the events first recorded, and the same calls follow. A call that can
never apply is a dead letter and nothing follows it: the order's deadline cancels it. The
events a marked call caused (stock events, the payment request, the wallet's answer) are
not routed (the router took them from the answer); every other one is.

Rolling upgrades stay safe both ways. An older router (no marker at all, or one that
stops at OnStockOutcomes and does not mark it) routes the events a new router's chain
caused: the target gets a call twice under one message id, and its inbox answers the
second. A new router routes the events an older router's calls caused (their causation
ids are plain event ids), and goes on with an order.placed an older router began (its
calls answer from the inboxes). What a mixed cluster can cost: an order.placed a new
router began and left undecided (RETRY, or handed back as it stopped: a rollback) and an
older router then finished goes no further than that router's chain, while a new router
may have skipped the marked events: that order waits for its deadline (cancelled,
everything released), as when a call is dead-lettered. In both cases a reservation that
landed after the order had already ended (a customer's cancel raced the Reserves) is never
undone by a late release: it stays held (README, "Known risks").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from actors import catalog
from actors.contracts import inbound
from actors.inventory import model as inventory
from actors.order import model as order
from actors.order import saga
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.router import Answered, Delivery, EventRouter, Reaction, chained_by
from actors.wallet import model as wallet

Out = Iterable[Delivery]
SPECS: Final[tuple[AggregateSpec, ...]] = (inventory.INVENTORY, wallet.WALLET, saga.ORDER)


# the wire names of the chained calls whose events are not routed (a test checks them)
RESERVE: Final = "Reserve"  # inventory.Reserve
ON_STOCK_OUTCOMES: Final = "OnStockOutcomes"  # saga.StockOutcomesForOrder
AUTHORIZE: Final = "Authorize"  # wallet.Authorize


def _reserve(env: EventEnvelope, event: order.OrderPlaced) -> Out:
    for line in event.lines:
        reserve = inventory.Reserve(sku=line.sku, order_id=env.aggregate_id, quantity=line.quantity)
        yield Delivery(line.sku, reserve)


def _stock_outcomes(env: EventEnvelope, _: order.OrderPlaced, answers: Sequence[Answered]) -> Out:
    outcomes = tuple(_outcome(answered) for answered in answers)
    yield Delivery(env.aggregate_id, saga.StockOutcomesForOrder(outcomes=outcomes))


def _outcome(answered: Answered) -> saga.StockOutcome:
    """The stock fact a Reserve's answer names; none: the order already holds the SKU."""
    sku = answered.delivery.actor_id
    for entry in answered.events:
        if entry.get("type") == inventory.StockRejected.type:
            # an inventory before `answered` (or an answer it recorded) names no reason
            reason = entry.get("reason") or inventory.INSUFFICIENT_STOCK
            return saga.StockOutcome(sku=sku, outcome="rejected", reason=reason)
    return saga.StockOutcome(sku=sku, outcome="reserved")  # stock_reserved, or no event


def _requested_payment(
    env: EventEnvelope, placed: order.OrderPlaced, answers: Sequence[Answered]
) -> Out:
    """The Authorize of the payment request OnStockOutcomes' answer names, as `_authorize`
    sends it for the event (an order before `answered` names no customer or amount: those
    of order.placed, which the order requests)."""
    for entry in _entries(answers, order.PaymentRequested.type):
        customer = entry.get("customer_id") or placed.customer_id
        amount = entry.get("amount") or placed.total
        authorize = wallet.Authorize(order_id=env.aggregate_id, amount=amount)
        yield Delivery(customer, authorize, because=entry["event_id"])


def _payment_outcome(env: EventEnvelope, _: order.OrderPlaced, answers: Sequence[Answered]) -> Out:
    """The order's call for the authorization or decline the Authorize's answer names."""
    for entry in _entries(answers, wallet.PaymentAuthorized.type):
        yield Delivery(
            env.aggregate_id, saga.PaymentAuthorizedForOrder(), because=entry["event_id"]
        )
    for entry in _entries(answers, wallet.PaymentDeclined.type):
        # a wallet before `answered` (or an answer it recorded) names no reason
        reason = entry.get("reason") or wallet.INSUFFICIENT_FUNDS
        declined = saga.PaymentDeclinedForOrder(reason=reason)
        yield Delivery(env.aggregate_id, declined, because=entry["event_id"])


def _entries(answers: Sequence[Answered], event_type: str) -> Iterable[Mapping[str, Any]]:
    return (entry for a in answers for entry in a.events if entry.get("type") == event_type)


def _authorize(env: EventEnvelope, event: order.PaymentRequested) -> Out:
    if not chained_by(env, ON_STOCK_OUTCOMES):  # else the router sent it from the answer
        authorize = wallet.Authorize(order_id=env.aggregate_id, amount=event.amount)
        yield Delivery(event.customer_id, authorize)


def _settle(env: EventEnvelope, event: order.OrderShipped) -> Out:
    for sku in event.commit_skus:
        yield Delivery(sku, inventory.Commit(sku=sku, order_id=env.aggregate_id))
    if event.capture_payment:
        yield Delivery(event.customer_id, wallet.Capture(order_id=env.aggregate_id))


def _compensate(env: EventEnvelope, event: order.OrderCancelled) -> Out:
    for sku in event.release_skus:
        yield Delivery(sku, inventory.Release(sku=sku, order_id=env.aggregate_id))
    if event.void_payment:
        yield Delivery(event.customer_id, wallet.Void(order_id=env.aggregate_id))


def _late_release(env: EventEnvelope, event: order.LateReservationReleased) -> Out:
    yield Delivery(event.sku, inventory.Release(sku=event.sku, order_id=env.aggregate_id))


def _late_void(env: EventEnvelope, event: order.LatePaymentVoided) -> Out:
    yield Delivery(event.customer_id, wallet.Void(order_id=env.aggregate_id))


def _stock_reserved(env: EventEnvelope, event: inventory.StockReserved) -> Out:
    if not chained_by(env, RESERVE):  # else the order has it from OnStockOutcomes
        yield Delivery(event.order_id, saga.StockReservedForOrder(sku=event.sku))


def _stock_rejected(env: EventEnvelope, event: inventory.StockRejected) -> Out:
    if not chained_by(env, RESERVE):
        rejected = saga.StockRejectedForOrder(sku=event.sku, reason=event.reason)
        yield Delivery(event.order_id, rejected)


def _payment_authorized(env: EventEnvelope, event: wallet.PaymentAuthorized) -> Out:
    if not chained_by(env, AUTHORIZE):  # else the order has it from the chain
        yield Delivery(event.order_id, saga.PaymentAuthorizedForOrder())


def _payment_declined(env: EventEnvelope, event: wallet.PaymentDeclined) -> Out:
    if not chained_by(env, AUTHORIZE):
        yield Delivery(event.order_id, saga.PaymentDeclinedForOrder(reason=event.reason))


def _dispatched(_: EventEnvelope, event: inbound.ShipmentDispatched) -> Out:
    yield Delivery(event.order_id, saga.ShipmentDispatched(shipment_id=event.shipment_id))


def _shipment_failed(_: EventEnvelope, event: inbound.ShipmentFailed) -> Out:
    yield Delivery(event.order_id, saga.ShipmentFailed(reason=event.reason))


def _restock(_: EventEnvelope, event: inbound.StockReceived) -> Out:
    yield Delivery(event.sku, inventory.Restock(sku=event.sku, quantity=event.quantity))


def _deposit(_: EventEnvelope, event: inbound.FundsDeposited) -> Out:
    yield Delivery(event.customer_id, wallet.Deposit(amount=event.amount))


REACTIONS: Final = (
    Reaction(
        catalog.ORDERS,
        order.OrderPlaced,
        _reserve,
        then=(_stock_outcomes, _requested_payment, _payment_outcome),
    ),
    Reaction(catalog.ORDERS, order.PaymentRequested, _authorize),
    Reaction(catalog.ORDERS, order.OrderShipped, _settle),
    Reaction(catalog.ORDERS, order.OrderCancelled, _compensate),
    Reaction(catalog.ORDERS, order.LateReservationReleased, _late_release),
    Reaction(catalog.ORDERS, order.LatePaymentVoided, _late_void),
    Reaction(catalog.INVENTORY, inventory.StockReserved, _stock_reserved),
    Reaction(catalog.INVENTORY, inventory.StockRejected, _stock_rejected),
    Reaction(catalog.WALLET, wallet.PaymentAuthorized, _payment_authorized),
    Reaction(catalog.WALLET, wallet.PaymentDeclined, _payment_declined),
    Reaction(catalog.SHIPMENTS, inbound.ShipmentDispatched, _dispatched),
    Reaction(catalog.SHIPMENTS, inbound.ShipmentFailed, _shipment_failed),
    Reaction(catalog.RESTOCKS, inbound.StockReceived, _restock),
    Reaction(catalog.DEPOSITS, inbound.FundsDeposited, _deposit),
)

KNOWN_EVENTS: Final[dict[str, dict[str, type[Event]]]] = {
    **inbound.TOPICS,
    **{spec.topic: dict(spec.events) for spec in SPECS},
}


def build_router() -> EventRouter:
    return EventRouter(REACTIONS, specs=SPECS, known=KNOWN_EVENTS)
