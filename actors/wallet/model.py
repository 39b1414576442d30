"""Wallet's pure domain model: one customer's balance and the holds orders place on it.

Invariants (checked by the property tests after every step):
    balance >= 0;  sum(holds) <= balance;  deposited_total - captured_total == balance.
Authorize never raises for lack of funds: it records PaymentDeclined, a fact the order saga
reacts to. Authorize, Void and Capture are safe to repeat (at-least-once delivery).
Amounts are integer minor units (cents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final

from pydantic import Field

from actors import catalog
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.domain import Command, Event, State, event_types, remember
from actors.toolkit.errors import NotFoundError, RuleViolationError
from actors.toolkit.ids import OrderId

MAX_DEPOSIT: Final = 100_000_000_000  # one deposit: a billion in major units
MAX_BALANCE: Final = 1_000_000_000_000_000  # below 2**53, so exact in any JSON reader
INSUFFICIENT_FUNDS: Final = "insufficient_funds"  # PaymentDeclined.reason

SETTLED_MEMORY: Final = 256  # settled orders remembered per wallet (README: Guarantees)

Amount = Annotated[int, Field(gt=0, le=MAX_BALANCE)]


# --- state -------------------------------------------------------------------------------


class WalletState(State):
    # stored beside the snapshot, appended to by the commits that settle an order
    memories: ClassVar[Mapping[str, int]] = {"captured_orders": SETTLED_MEMORY}

    balance: int = Field(default=0, ge=0)
    holds: dict[str, int] = Field(default_factory=dict)  # order id -> amount
    deposited_total: int = Field(default=0, ge=0)
    captured_total: int = Field(default=0, ge=0)
    # The newest SETTLED_MEMORY settled order ids, oldest first: a repeated Capture (or a
    # late repeat of the step before it) is recognised without the state growing for ever.
    captured_orders: tuple[str, ...] = ()

    @property
    def held(self) -> int:
        return sum(self.holds.values())

    @property
    def available(self) -> int:
        return self.balance - self.held


# --- commands ------------------------------------------------------------------------------


class Deposit(Command):
    amount: int = Field(gt=0, le=MAX_DEPOSIT)


class Authorize(Command):
    order_id: OrderId
    amount: Amount


class Capture(Command):
    order_id: OrderId


class Void(Command):
    order_id: OrderId


# --- events --------------------------------------------------------------------------------


class FundsCredited(Event):
    type: ClassVar[str] = "wallet.funds_credited"
    amount: Amount


class PaymentAuthorized(Event):
    type: ClassVar[str] = "wallet.payment_authorized"
    order_id: OrderId
    amount: Amount


class PaymentDeclined(Event):
    type: ClassVar[str] = "wallet.payment_declined"
    order_id: OrderId
    amount: Amount
    reason: str = INSUFFICIENT_FUNDS


class PaymentVoided(Event):
    type: ClassVar[str] = "wallet.payment_voided"
    order_id: OrderId
    amount: Amount


class PaymentCaptured(Event):
    type: ClassVar[str] = "wallet.payment_captured"
    order_id: OrderId
    amount: Amount


EVENTS = event_types(
    FundsCredited, PaymentAuthorized, PaymentDeclined, PaymentVoided, PaymentCaptured
)


# --- errors --------------------------------------------------------------------------------


class HoldNotFoundError(NotFoundError):
    code = "wallet.hold_not_found"


class BalanceLimitExceededError(RuleViolationError):
    code = "wallet.balance_limit_exceeded"


# --- the actor's methods: wire name -> command (the one declaration; see AggregateSpec) ----

WALLET: Final = AggregateSpec(
    actor_type=catalog.WALLET_ACTOR,
    topic=catalog.WALLET,
    commands={"Deposit": Deposit, "Authorize": Authorize, "Capture": Capture, "Void": Void},
    events=EVENTS,
    errors=(HoldNotFoundError, BalanceLimitExceededError),
    # an Authorize's answer says why it was declined: the router chains it to the order
    answered={PaymentDeclined.type: ("reason",)},
)


# --- decider -------------------------------------------------------------------------------


def initial_state() -> WalletState:
    return WalletState()


def decide(state: WalletState, command: Command) -> list[Event]:
    """The events `command` yields against `state`; raises a DomainError when refused."""
    match command:
        case Deposit():
            return _deposit(state, command)
        case Authorize():
            return _authorize(state, command)
        case Void():
            held = state.holds.get(command.order_id)
            if held is None:  # unknown or already voided: compensation may repeat
                return []
            return [PaymentVoided(order_id=command.order_id, amount=held)]
        case Capture():
            return _capture(state, command)
    raise TypeError(f"wallet cannot handle {type(command).__name__}")


def _deposit(state: WalletState, command: Deposit) -> list[Event]:
    if state.balance + command.amount > MAX_BALANCE:
        raise BalanceLimitExceededError(
            f"depositing {command.amount} would exceed a balance of {MAX_BALANCE}",
            context={"balance": state.balance, "amount": command.amount},
        )
    return [FundsCredited(amount=command.amount)]


def _authorize(state: WalletState, command: Authorize) -> list[Event]:
    order_id = command.order_id
    if order_id in state.holds or order_id in state.captured_orders:
        return []  # a redelivered Authorize must not hold money twice
    outcome = PaymentDeclined if state.available < command.amount else PaymentAuthorized
    return [outcome(order_id=order_id, amount=command.amount)]


def _capture(state: WalletState, command: Capture) -> list[Event]:
    held = state.holds.get(command.order_id)
    if held is not None:
        return [PaymentCaptured(order_id=command.order_id, amount=held)]
    if command.order_id in state.captured_orders:
        return []
    raise HoldNotFoundError(
        f"order {command.order_id} holds no payment authorization",
        context={"order_id": command.order_id},
    )


def evolve(state: WalletState, event: Event) -> WalletState:
    """`state` with `event` applied (a new object; `state` is left as it was)."""
    match event:
        case FundsCredited(amount=amount):
            return state.model_copy(
                update={
                    "balance": state.balance + amount,
                    "deposited_total": state.deposited_total + amount,
                }
            )
        case PaymentAuthorized(order_id=order_id, amount=amount):
            return state.model_copy(update={"holds": {**state.holds, order_id: amount}})
        case PaymentVoided(order_id=order_id):
            return state.model_copy(update={"holds": _without(state, order_id)})
        case PaymentCaptured(order_id=order_id, amount=amount):
            return state.model_copy(
                update={
                    "holds": _without(state, order_id),
                    "balance": state.balance - amount,
                    "captured_total": state.captured_total + amount,
                    "captured_orders": remember(
                        state.captured_orders, order_id, limit=SETTLED_MEMORY
                    ),
                }
            )
        case PaymentDeclined():
            return state
    raise TypeError(f"wallet cannot apply {type(event).__name__}")


def _without(state: WalletState, order_id: str) -> dict[str, int]:
    return {key: amount for key, amount in state.holds.items() if key != order_id}
