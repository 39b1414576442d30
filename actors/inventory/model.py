"""Inventory's pure domain model: stock of one SKU and the reservations orders hold on it.

Invariants (checked by the property tests after every step):
    on_hand >= 0;  sum(reservations) <= on_hand;  restocked_total - committed_total == on_hand.
Reserve never raises for lack of stock: it records StockRejected, a fact the order saga
reacts to. Reserve, Release and Commit are safe to repeat (at-least-once delivery).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final

from pydantic import Field

from actors import catalog
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.domain import Command, Event, State, event_types, remember
from actors.toolkit.errors import NotFoundError, RuleViolationError
from actors.toolkit.ids import OrderId, Sku

MAX_QUANTITY: Final = 1_000_000
MAX_ON_HAND: Final = 1_000_000_000
INSUFFICIENT_STOCK: Final = "insufficient_stock"  # StockRejected.reason

SETTLED_MEMORY: Final = 256  # settled orders remembered per SKU (README: Guarantees)

Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY)]


# --- state -------------------------------------------------------------------------------


class InventoryState(State):
    # stored beside the snapshot, appended to by the commits that settle an order
    memories: ClassVar[Mapping[str, int]] = {"committed_orders": SETTLED_MEMORY}

    on_hand: int = Field(default=0, ge=0)
    reservations: dict[str, int] = Field(default_factory=dict)  # order id -> quantity
    restocked_total: int = Field(default=0, ge=0)
    committed_total: int = Field(default=0, ge=0)
    # The newest SETTLED_MEMORY settled order ids, oldest first: a repeated Commit (or a
    # late repeat of the step before it) is recognised without the state growing for ever.
    committed_orders: tuple[str, ...] = ()

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


# --- commands (each carries the SKU so the events it yields are self-describing) ------------


class Restock(Command):
    sku: Sku
    quantity: Quantity


class Reserve(Command):
    sku: Sku
    order_id: OrderId
    quantity: Quantity


class Release(Command):
    sku: Sku
    order_id: OrderId


class Commit(Command):
    sku: Sku
    order_id: OrderId


# --- events --------------------------------------------------------------------------------


class StockRestocked(Event):
    type: ClassVar[str] = "inventory.stock_restocked"
    sku: Sku
    quantity: Quantity


class StockReserved(Event):
    type: ClassVar[str] = "inventory.stock_reserved"
    order_id: OrderId
    sku: Sku
    quantity: Quantity


class StockRejected(Event):
    type: ClassVar[str] = "inventory.stock_rejected"
    order_id: OrderId
    sku: Sku
    quantity: Quantity
    reason: str = INSUFFICIENT_STOCK


class StockReleased(Event):
    type: ClassVar[str] = "inventory.stock_released"
    order_id: OrderId
    sku: Sku
    quantity: Quantity


class StockCommitted(Event):
    type: ClassVar[str] = "inventory.stock_committed"
    order_id: OrderId
    sku: Sku
    quantity: Quantity


EVENTS = event_types(StockRestocked, StockReserved, StockRejected, StockReleased, StockCommitted)


# --- errors --------------------------------------------------------------------------------


class ReservationNotFoundError(NotFoundError):
    code = "inventory.reservation_not_found"


class StockLimitExceededError(RuleViolationError):
    code = "inventory.stock_limit_exceeded"


# --- the actor's methods: wire name -> command (the one declaration; see AggregateSpec) ----

INVENTORY: Final = AggregateSpec(
    actor_type=catalog.INVENTORY_ACTOR,
    topic=catalog.INVENTORY,
    commands={"Restock": Restock, "Reserve": Reserve, "Release": Release, "Commit": Commit},
    events=EVENTS,
    errors=(ReservationNotFoundError, StockLimitExceededError),
    # a Reserve's answer says why it was rejected: the router chains it to the order
    answered={StockRejected.type: ("reason",)},
)


# --- decider -------------------------------------------------------------------------------


def initial_state() -> InventoryState:
    return InventoryState()


def decide(state: InventoryState, command: Command) -> list[Event]:
    """The events `command` yields against `state`; raises a DomainError when refused."""
    match command:
        case Restock():
            return _restock(state, command)
        case Reserve():
            return _reserve(state, command)
        case Release():
            held = state.reservations.get(command.order_id)
            if held is None:  # unknown or already released: compensation may repeat
                return []
            return [StockReleased(order_id=command.order_id, sku=command.sku, quantity=held)]
        case Commit():
            return _commit(state, command)
    raise TypeError(f"inventory cannot handle {type(command).__name__}")


def _restock(state: InventoryState, command: Restock) -> list[Event]:
    if state.on_hand + command.quantity > MAX_ON_HAND:
        raise StockLimitExceededError(
            f"restocking {command.quantity} would exceed {MAX_ON_HAND} on hand",
            context={"sku": command.sku, "on_hand": state.on_hand, "quantity": command.quantity},
        )
    return [StockRestocked(sku=command.sku, quantity=command.quantity)]


def _reserve(state: InventoryState, command: Reserve) -> list[Event]:
    order_id = command.order_id
    if order_id in state.reservations or order_id in state.committed_orders:
        return []  # a redelivered Reserve must not hold stock twice
    outcome = StockRejected if state.available < command.quantity else StockReserved
    return [outcome(order_id=order_id, sku=command.sku, quantity=command.quantity)]


def _commit(state: InventoryState, command: Commit) -> list[Event]:
    held = state.reservations.get(command.order_id)
    if held is not None:
        return [StockCommitted(order_id=command.order_id, sku=command.sku, quantity=held)]
    if command.order_id in state.committed_orders:
        return []
    raise ReservationNotFoundError(
        f"order {command.order_id} holds no reservation of {command.sku}",
        context={"sku": command.sku, "order_id": command.order_id},
    )


def evolve(state: InventoryState, event: Event) -> InventoryState:
    """`state` with `event` applied (a new object; `state` is left as it was)."""
    match event:
        case StockRestocked(quantity=quantity):
            return state.model_copy(
                update={
                    "on_hand": state.on_hand + quantity,
                    "restocked_total": state.restocked_total + quantity,
                }
            )
        case StockReserved(order_id=order_id, quantity=quantity):
            return state.model_copy(
                update={"reservations": {**state.reservations, order_id: quantity}}
            )
        case StockReleased(order_id=order_id):
            return state.model_copy(update={"reservations": _without(state, order_id)})
        case StockCommitted(order_id=order_id, quantity=quantity):
            return state.model_copy(
                update={
                    "reservations": _without(state, order_id),
                    "on_hand": state.on_hand - quantity,
                    "committed_total": state.committed_total + quantity,
                    "committed_orders": remember(
                        state.committed_orders, order_id, limit=SETTLED_MEMORY
                    ),
                }
            )
        case StockRejected():
            return state
    raise TypeError(f"inventory cannot apply {type(event).__name__}")


def _without(state: InventoryState, order_id: str) -> dict[str, int]:
    return {key: qty for key, qty in state.reservations.items() if key != order_id}
