"""What drives the order saga and what it remembers: statuses, edges, commands, OrderState.

    NEW ─▶ RESERVING ─▶ AUTHORIZING ─▶ CONFIRMED ─▶ SHIPPED
              │              │              │
              └──────────────┴──────────────┴─────▶ CANCELLED

SHIPPED and CANCELLED are terminal: nothing leaves them. Each waiting status is one step
a deadline reminder guards ("shipping" is CONFIRMED waiting for the shipment).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field

from actors.toolkit.domain import Command, Model, State
from actors.toolkit.ids import CustomerId, Sku

MAX_LINES: Final = 50
MAX_QUANTITY: Final = 1_000_000
MAX_UNIT_PRICE: Final = 10_000_000  # minor units; 50 full lines stay far below 2**53


class Status(StrEnum):
    NEW = "new"
    RESERVING = "reserving"
    AUTHORIZING = "authorizing"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


Step = Literal["reserving", "authorizing", "shipping"]

TERMINAL: Final = frozenset({Status.SHIPPED, Status.CANCELLED})

TRANSITIONS: Final[dict[Status, frozenset[Status]]] = {
    Status.NEW: frozenset({Status.RESERVING}),
    Status.RESERVING: frozenset({Status.AUTHORIZING, Status.CANCELLED}),
    Status.AUTHORIZING: frozenset({Status.CONFIRMED, Status.CANCELLED}),
    Status.CONFIRMED: frozenset({Status.SHIPPED, Status.CANCELLED}),
    Status.SHIPPED: frozenset(),
    Status.CANCELLED: frozenset(),
}

STEP_STATUS: Final[dict[Step, Status]] = {
    "reserving": Status.RESERVING,
    "authorizing": Status.AUTHORIZING,
    "shipping": Status.CONFIRMED,
}

# How far along the happy path a status is; CANCELLED can follow any waiting status.
_PROGRESS: Final[dict[Status, int]] = {
    Status.NEW: 0,
    Status.RESERVING: 1,
    Status.AUTHORIZING: 2,
    Status.CONFIRMED: 3,
    Status.SHIPPED: 4,
    Status.CANCELLED: 4,
}


def can_move(source: Status, target: Status) -> bool:
    """Whether the saga may go from `source` to `target` in one transition."""
    return target in TRANSITIONS[source]


def reached(status: Status, milestone: Status) -> bool:
    """Whether an order in `status` has come at least as far as `milestone`."""
    return _PROGRESS[status] >= _PROGRESS[milestone]


def step_of(status: Status) -> Step | None:
    """The step an order in `status` is waiting in (the deadline to arm), if any."""
    for step, waiting in STEP_STATUS.items():
        if waiting is status:
            return step
    return None


# --- lines and state -------------------------------------------------------------------------


class Line(Model):
    sku: Sku
    quantity: int = Field(gt=0, le=MAX_QUANTITY)
    unit_price: int = Field(gt=0, le=MAX_UNIT_PRICE)  # minor units (cents)

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


def _unique_skus(lines: tuple[Line, ...]) -> tuple[Line, ...]:
    if len({line.sku for line in lines}) != len(lines):
        raise ValueError("each SKU may appear on one line only")
    return lines


Lines = Annotated[
    tuple[Line, ...], Field(min_length=1, max_length=MAX_LINES), AfterValidator(_unique_skus)
]


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
