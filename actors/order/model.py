"""The order's vocabulary: its statuses and their graph, lines, events and errors.

    NEW ─▶ RESERVING ─▶ AUTHORIZING ─▶ CONFIRMED ─▶ SHIPPED
              │              │              │
              └──────────────┴──────────────┴─────▶ CANCELLED

SHIPPED and CANCELLED are terminal: nothing leaves them. Each waiting status is one step
a deadline reminder guards ("shipping" is CONFIRMED waiting for the shipment). What the
saga decides, from which commands and on which state: actors.order.saga.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field

from actors.toolkit.domain import Event, Model, event_types
from actors.toolkit.errors import ConflictError, NotFoundError, RuleViolationError
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


# --- events --------------------------------------------------------------------------------


class OrderPlaced(Event):
    type: ClassVar[str] = "order.placed"
    customer_id: CustomerId
    lines: Lines
    total: int = Field(gt=0)


class OrderLineReserved(Event):
    type: ClassVar[str] = "order.line_reserved"
    sku: Sku


class PaymentRequested(Event):
    type: ClassVar[str] = "order.payment_requested"
    customer_id: CustomerId
    amount: int = Field(gt=0)


class OrderConfirmed(Event):
    type: ClassVar[str] = "order.confirmed"
    customer_id: CustomerId
    lines: Lines


class OrderShipped(Event):
    type: ClassVar[str] = "order.shipped"
    shipment_id: str
    customer_id: CustomerId
    amount: int = Field(gt=0)
    capture_payment: bool = True
    commit_skus: tuple[Sku, ...]


class OrderCancelled(Event):
    """Compensation to run: Release every SKU in release_skus, Void when void_payment."""

    type: ClassVar[str] = "order.cancelled"
    reason: str
    customer_id: CustomerId
    release_skus: tuple[Sku, ...]
    void_payment: bool


class LateReservationReleased(Event):
    """Stock got reserved after the order was cancelled: Release it."""

    type: ClassVar[str] = "order.late_reservation_released"
    sku: Sku


class LatePaymentVoided(Event):
    """Payment got authorized after the order was cancelled: Void it."""

    type: ClassVar[str] = "order.late_payment_voided"
    customer_id: CustomerId


EVENTS = event_types(
    OrderPlaced,
    OrderLineReserved,
    PaymentRequested,
    OrderConfirmed,
    OrderShipped,
    OrderCancelled,
    LateReservationReleased,
    LatePaymentVoided,
)


# --- errors --------------------------------------------------------------------------------


class OrderNotFoundError(NotFoundError):
    code = "order.not_found"


class OrderConflictError(ConflictError):
    code = "order.conflict"


class OrderAlreadyShippedError(ConflictError):
    code = "order.already_shipped"


class OrderWithShippingError(ConflictError):
    """The shipping partner has the order: only its dispatch or failure decides it now."""

    code = "order.with_shipping"


class InvalidTransitionError(ConflictError):
    """A fact that cannot precede the step it answers (e.g. a shipment before confirmation)."""

    code = "order.invalid_transition"


class UnknownOrderLineError(RuleViolationError):
    code = "order.unknown_line"
