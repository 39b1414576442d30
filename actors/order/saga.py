"""The order saga: its commands, its state and its decider, and the actor's method table.

Facts from inventory, wallet and shipping arrive as commands (StockReservedForOrder, ...).
Delivery is at-least-once and unordered, so: duplicates change nothing; anything arriving in
a terminal status yields no transition and never raises; compensation always names every
SKU (Release and Void are idempotent) and a reservation or hold that surfaces after the
cancellation is undone by a Late* event. StockOutcomesForOrder carries every line's stock
fact at once (the router's, from the answers of an order's Reserves): it is decided as its
single facts would be, one after the other. Statuses, lines, events, errors:
actors.order.model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from pydantic import Field

from actors import catalog
from actors.order.model import (
    EVENTS,
    MAX_LINES,
    STEP_STATUS,
    TERMINAL,
    InvalidTransitionError,
    LatePaymentVoided,
    LateReservationReleased,
    Line,
    Lines,
    OrderAlreadyShippedError,
    OrderCancelled,
    OrderConfirmed,
    OrderConflictError,
    OrderLineReserved,
    OrderNotFoundError,
    OrderPlaced,
    OrderShipped,
    OrderWithShippingError,
    PaymentRequested,
    Status,
    Step,
    UnknownOrderLineError,
    reached,
    step_of,
)
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.domain import Command, Event, Model, State
from actors.toolkit.ids import CustomerId, Sku

# --- state -----------------------------------------------------------------------------------


class OrderState(State):
    status: Status = Status.NEW
    customer_id: str = ""
    lines: tuple[Line, ...] = ()
    total: int = Field(default=0, ge=0)
    reserved_skus: frozenset[str] = frozenset()
    cancel_reason: str | None = None

    @property
    def skus(self) -> tuple[str, ...]:
        return tuple(line.sku for line in self.lines)

    @property
    def step(self) -> Step | None:
        """The step this order waits in (the deadline to arm), if any."""
        return step_of(self.status)


# --- commands: the customer's, then facts from other contexts -------------------------------

Reason = Annotated[str, Field(min_length=1, max_length=200)]


class Place(Command):
    customer_id: CustomerId
    lines: Lines

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


class Cancel(Command):
    reason: Reason = "cancelled by customer"


class StockReservedForOrder(Command):
    sku: Sku


class StockRejectedForOrder(Command):
    sku: Sku
    reason: Reason = "insufficient_stock"


class StockOutcome(Model):
    """What inventory answered one line's Reserve: held, or rejected and why."""

    sku: Sku
    outcome: Literal["reserved", "rejected"]
    reason: Reason | None = None  # a rejection's (None: StockRejectedForOrder's default)

    def fact(self) -> StockReservedForOrder | StockRejectedForOrder:
        """The single command this outcome stands for."""
        if self.outcome == "reserved":
            return StockReservedForOrder(sku=self.sku)
        if self.reason is None:
            return StockRejectedForOrder(sku=self.sku)
        return StockRejectedForOrder(sku=self.sku, reason=self.reason)


class StockOutcomesForOrder(Command):
    """Every line's outcome at once, in the order's line order (the router sends it once
    all of an order's Reserves answered)."""

    outcomes: tuple[StockOutcome, ...] = Field(min_length=1, max_length=MAX_LINES)


class PaymentAuthorizedForOrder(Command):
    pass


class PaymentDeclinedForOrder(Command):
    reason: Reason = "insufficient_funds"


class ShipmentDispatched(Command):
    shipment_id: str = Field(min_length=1, max_length=128)


class ShipmentFailed(Command):
    reason: Reason


class DeadlinePassed(Command):
    step: Step


# --- the actor's methods: wire name -> command (the one declaration; see AggregateSpec) ----
# The customer's, then the facts the event router turns into calls (actors/reactions.py).
# DeadlinePassed is not a method: only the order's own deadline reminder decides it.

ORDER: Final = AggregateSpec(
    actor_type=catalog.ORDER_ACTOR,
    topic=catalog.ORDERS,
    commands={
        "Place": Place,
        "Cancel": Cancel,
        "OnStockReserved": StockReservedForOrder,
        "OnStockRejected": StockRejectedForOrder,
        "OnStockOutcomes": StockOutcomesForOrder,
        "OnPaymentAuthorized": PaymentAuthorizedForOrder,
        "OnPaymentDeclined": PaymentDeclinedForOrder,
        "OnShipmentDispatched": ShipmentDispatched,
        "OnShipmentFailed": ShipmentFailed,
    },
    events=EVENTS,
    errors=(
        OrderNotFoundError,
        OrderConflictError,
        OrderAlreadyShippedError,
        OrderWithShippingError,
        InvalidTransitionError,
        UnknownOrderLineError,
    ),
    # OnStockOutcomes' answer names the payment to request: the router chains it to the
    # customer's wallet (actors/reactions.py)
    answered={PaymentRequested.type: ("customer_id", "amount")},
)


# --- decider -------------------------------------------------------------------------------


def initial_state() -> OrderState:
    return OrderState()


def decide(state: OrderState, command: Command) -> list[Event]:
    """The events `command` yields against `state`; raises a DomainError when refused."""
    if isinstance(command, Place):
        return _place(state, command)
    if isinstance(command, StockOutcomesForOrder):
        return _on_stock_outcomes(state, command)
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"order cannot handle {type(command).__name__}")
    if state.status is Status.NEW:
        if isinstance(command, DeadlinePassed):
            return []  # a reminder that outlived an order never placed
        raise OrderNotFoundError("order was never placed")
    if state.status in TERMINAL and not isinstance(command, Cancel):
        return _late(state, command)
    return handler(state, command)


def _place(state: OrderState, command: Place) -> list[Event]:
    if state.status is Status.NEW:
        placed = OrderPlaced(
            customer_id=command.customer_id, lines=command.lines, total=command.total
        )
        return [placed]
    same_lines = _by_sku(command.lines) == _by_sku(state.lines)
    if command.customer_id == state.customer_id and same_lines:
        return []  # a retried Place
    raise OrderConflictError(
        "order already placed with different content", context={"status": state.status.value}
    )


def _by_sku(lines: tuple[Line, ...]) -> dict[str, Line]:
    return {line.sku: line for line in lines}


def _late(state: OrderState, command: Command) -> list[Event]:
    """A fact after the end changes nothing, but what it holds must still be given back."""
    if state.status is not Status.CANCELLED:
        return []
    if isinstance(command, StockReservedForOrder):
        return [LateReservationReleased(sku=command.sku)]
    if isinstance(command, PaymentAuthorizedForOrder):
        return [LatePaymentVoided(customer_id=state.customer_id)]
    return []


def _cancelled(state: OrderState, reason: str) -> list[Event]:
    # Release every SKU, not just those known reserved: a reservation may be in flight.
    void = state.status in (Status.AUTHORIZING, Status.CONFIRMED)
    cancelled = OrderCancelled(
        reason=reason, customer_id=state.customer_id, release_skus=state.skus, void_payment=void
    )
    return [cancelled]


def _cancel(state: OrderState, command: Cancel) -> list[Event]:
    if state.status is Status.SHIPPED:
        raise OrderAlreadyShippedError("a shipped order cannot be cancelled")
    if state.status is Status.CONFIRMED:
        # A cancel now would race the partner's dispatch and could ship goods unpaid.
        raise OrderWithShippingError(
            "the order is with the shipping partner and can no longer be cancelled",
            context={"status": state.status.value},
        )
    if state.status is Status.CANCELLED:
        return []
    return _cancelled(state, command.reason)


def _check_line(state: OrderState, sku: str) -> None:
    if sku not in state.skus:
        raise UnknownOrderLineError(f"the order has no line for {sku}", context={"sku": sku})


def _on_stock_reserved(state: OrderState, command: StockReservedForOrder) -> list[Event]:
    _check_line(state, command.sku)
    if command.sku in state.reserved_skus or state.status is not Status.RESERVING:
        return []
    events: list[Event] = [OrderLineReserved(sku=command.sku)]
    if state.reserved_skus | {command.sku} >= set(state.skus):
        events.append(PaymentRequested(customer_id=state.customer_id, amount=state.total))
    return events


def _on_stock_rejected(state: OrderState, command: StockRejectedForOrder) -> list[Event]:
    _check_line(state, command.sku)
    # A rejection of a SKU since reserved is stale (a redelivered Reserve raced a restock).
    if command.sku in state.reserved_skus or state.status is not Status.RESERVING:
        return []
    return _cancelled(state, f"stock rejected for {command.sku}: {command.reason}")


def _on_stock_outcomes(state: OrderState, command: StockOutcomesForOrder) -> list[Event]:
    """Each outcome decided as its single command, on the state the ones before it left:
    the same events and the same end state as the facts sent one by one, so every rule of
    theirs holds (a repeat changes nothing, a fact after the end is late, a reservation
    after a rejection is released). A refusal of any one refuses the whole batch."""
    events: list[Event] = []
    for outcome in command.outcomes:
        decided = decide(state, outcome.fact())
        for event in decided:
            state = evolve(state, event)
        events += decided
    return events


def _require(state: OrderState, milestone: Status, command: Command) -> None:
    if not reached(state.status, milestone):
        raise InvalidTransitionError(
            f"{type(command).__name__} cannot arrive while the order is {state.status.value}",
            context={"status": state.status.value},
        )


def _on_payment_authorized(state: OrderState, command: PaymentAuthorizedForOrder) -> list[Event]:
    _require(state, Status.AUTHORIZING, command)
    if state.status is not Status.AUTHORIZING:
        return []
    return [OrderConfirmed(customer_id=state.customer_id, lines=state.lines)]


def _on_payment_declined(state: OrderState, command: PaymentDeclinedForOrder) -> list[Event]:
    _require(state, Status.AUTHORIZING, command)
    if state.status is not Status.AUTHORIZING:
        return []  # stale: a redelivered Authorize was declined after the first succeeded
    return _cancelled(state, f"payment declined: {command.reason}")


def _on_dispatched(state: OrderState, command: ShipmentDispatched) -> list[Event]:
    _require(state, Status.CONFIRMED, command)
    shipped = OrderShipped(
        shipment_id=command.shipment_id,
        customer_id=state.customer_id,
        amount=state.total,
        commit_skus=state.skus,
    )
    return [shipped]


def _on_shipment_failed(state: OrderState, command: ShipmentFailed) -> list[Event]:
    _require(state, Status.CONFIRMED, command)
    return _cancelled(state, f"shipment failed: {command.reason}")


def _on_deadline(state: OrderState, command: DeadlinePassed) -> list[Event]:
    if state.status is not STEP_STATUS[command.step]:
        return []  # the step finished before its reminder fired
    return _cancelled(state, f"deadline passed while {command.step}")


_HANDLERS: Final[dict[type[Command], Callable[[OrderState, Any], list[Event]]]] = {
    Cancel: _cancel,
    StockReservedForOrder: _on_stock_reserved,
    StockRejectedForOrder: _on_stock_rejected,
    PaymentAuthorizedForOrder: _on_payment_authorized,
    PaymentDeclinedForOrder: _on_payment_declined,
    ShipmentDispatched: _on_dispatched,
    ShipmentFailed: _on_shipment_failed,
    DeadlinePassed: _on_deadline,
}


def evolve(state: OrderState, event: Event) -> OrderState:
    """`state` with `event` applied (a new object; `state` is left as it was)."""
    match event:
        case OrderPlaced(customer_id=customer_id, lines=lines, total=total):
            update: dict[str, Any] = {"customer_id": customer_id, "lines": lines, "total": total}
            return state.model_copy(update={"status": Status.RESERVING, **update})
        case OrderLineReserved(sku=sku):
            return state.model_copy(update={"reserved_skus": state.reserved_skus | {sku}})
        case PaymentRequested():
            return state.model_copy(update={"status": Status.AUTHORIZING})
        case OrderConfirmed():
            return state.model_copy(update={"status": Status.CONFIRMED})
        case OrderShipped():
            return state.model_copy(update={"status": Status.SHIPPED})
        case OrderCancelled(reason=reason):
            return state.model_copy(update={"status": Status.CANCELLED, "cancel_reason": reason})
        case LateReservationReleased() | LatePaymentVoided():
            return state
    raise TypeError(f"order cannot apply {type(event).__name__}")
