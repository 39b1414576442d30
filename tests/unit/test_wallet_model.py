"""Wallet's decider: funds rules, idempotent holds, ledger invariants."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.toolkit.domain import Command
from actors.toolkit.errors import NotFoundError, RuleViolationError, error_from_dict
from actors.wallet.model import (
    EVENTS,
    INSUFFICIENT_FUNDS,
    MAX_BALANCE,
    SETTLED_MEMORY,
    WALLET,
    Authorize,
    BalanceLimitExceededError,
    Capture,
    Deposit,
    FundsCredited,
    HoldNotFoundError,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentVoided,
    Void,
    WalletState,
    decide,
    evolve,
    initial_state,
)
from tests.unit.deciders import ClaimsProperties, Decider


def run(state: WalletState, *commands: Command) -> WalletState:
    for command in commands:
        for event in decide(state, command):
            state = evolve(state, event)
    return state


def funded(amount: int = 1_000) -> WalletState:
    return run(initial_state(), Deposit(amount=amount))


def assert_invariants(state: WalletState) -> None:
    assert state.balance >= 0
    assert all(amount > 0 for amount in state.holds.values())
    assert state.held <= state.balance
    assert state.deposited_total - state.captured_total == state.balance


def test_a_new_wallet_is_empty() -> None:
    state = initial_state()
    assert (state.balance, state.holds, state.available) == (0, {}, 0)


def test_depositing_adds_to_the_balance_and_the_deposited_total() -> None:
    assert decide(initial_state(), Deposit(amount=250)) == [FundsCredited(amount=250)]
    state = run(initial_state(), Deposit(amount=250), Deposit(amount=50))
    assert (state.balance, state.deposited_total) == (300, 300)


def test_depositing_beyond_the_balance_limit_is_refused() -> None:
    state = WalletState(balance=MAX_BALANCE, deposited_total=MAX_BALANCE)
    with pytest.raises(BalanceLimitExceededError) as caught:
        decide(state, Deposit(amount=1))
    assert caught.value.code == "wallet.balance_limit_exceeded"
    assert isinstance(caught.value, RuleViolationError)


def test_authorizing_within_the_balance_holds_the_amount() -> None:
    state = funded(1_000)
    events = decide(state, Authorize(order_id="o1", amount=400))
    assert events == [PaymentAuthorized(order_id="o1", amount=400)]
    state = evolve(state, events[0])
    assert (state.balance, state.holds, state.available) == (1_000, {"o1": 400}, 600)


def test_authorizing_more_than_available_is_declined() -> None:
    state = funded(300)
    events = decide(state, Authorize(order_id="o1", amount=301))
    assert events == [PaymentDeclined(order_id="o1", amount=301, reason=INSUFFICIENT_FUNDS)]
    assert evolve(state, events[0]) == state


def test_held_money_is_not_available_to_other_orders() -> None:
    state = run(funded(500), Authorize(order_id="o1", amount=400))
    assert [type(e) for e in decide(state, Authorize(order_id="o2", amount=101))] == [
        PaymentDeclined
    ]


def test_authorizing_again_for_the_same_order_changes_nothing() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400))
    assert decide(state, Authorize(order_id="o1", amount=400)) == []
    assert decide(state, Authorize(order_id="o1", amount=10)) == []


def test_authorizing_an_already_captured_order_changes_nothing() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400), Capture(order_id="o1"))
    assert decide(state, Authorize(order_id="o1", amount=400)) == []


def test_voiding_frees_the_hold() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400))
    events = decide(state, Void(order_id="o1"))
    assert events == [PaymentVoided(order_id="o1", amount=400)]
    state = evolve(state, events[0])
    assert (state.balance, state.holds, state.available) == (1_000, {}, 1_000)


def test_voiding_an_unknown_or_voided_order_changes_nothing() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400), Void(order_id="o1"))
    assert decide(state, Void(order_id="o1")) == []
    assert decide(state, Void(order_id="never")) == []


def test_capturing_takes_the_held_amount_from_the_balance() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400))
    events = decide(state, Capture(order_id="o1"))
    assert events == [PaymentCaptured(order_id="o1", amount=400)]
    state = evolve(state, events[0])
    assert (state.balance, state.holds, state.captured_total) == (600, {}, 400)
    assert state.captured_orders == ("o1",)


def test_the_memory_of_captured_orders_is_bounded_and_forgets_the_oldest_first() -> None:
    state = funded(SETTLED_MEMORY + 10)
    for n in range(SETTLED_MEMORY + 10):
        state = run(state, Authorize(order_id=f"o{n}", amount=1), Capture(order_id=f"o{n}"))
    assert len(state.captured_orders) == SETTLED_MEMORY
    assert state.captured_orders[0] == "o10"
    recent = f"o{SETTLED_MEMORY + 9}"
    assert decide(state, Authorize(order_id=recent, amount=1)) == []
    assert decide(state, Capture(order_id=recent)) == []
    with pytest.raises(HoldNotFoundError):  # beyond the memory: refused, never applied twice
        decide(state, Capture(order_id="o0"))
    assert (state.balance, state.captured_total) == (0, SETTLED_MEMORY + 10)


def test_capturing_twice_changes_nothing_the_second_time() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400), Capture(order_id="o1"))
    assert decide(state, Capture(order_id="o1")) == []
    assert decide(state, Void(order_id="o1")) == []


def test_capturing_without_a_hold_is_refused() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400), Void(order_id="o1"))
    with pytest.raises(HoldNotFoundError) as caught:
        decide(state, Capture(order_id="o1"))
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.to_dict()["code"] == "wallet.hold_not_found"


def test_decide_never_mutates_the_state() -> None:
    state = run(funded(1_000), Authorize(order_id="o1", amount=400))
    before = state.model_dump()
    for command in (Authorize(order_id="o2", amount=1), Void(order_id="o1")):
        for event in decide(state, command):
            evolve(state, event)
    assert state.model_dump() == before


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (Deposit, {"amount": 0}),
        (Deposit, {"amount": 100_000_000_001}),
        (Authorize, {"order_id": "o1", "amount": -5}),
        (Authorize, {"order_id": "o 1", "amount": 5}),
        (Capture, {"order_id": "x" * 65}),
        (Void, {"order_id": "o1", "amount": 5}),
    ],
)
def test_malformed_commands_are_refused_by_validation(
    model: type[Command], fields: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(fields)


def test_errors_come_back_by_code() -> None:
    assert isinstance(
        error_from_dict({"code": "wallet.hold_not_found"}, WALLET.error_codes), HoldNotFoundError
    )


def test_state_survives_a_json_round_trip() -> None:
    state = run(
        funded(1_000),
        Authorize(order_id="o1", amount=100),
        Authorize(order_id="o2", amount=200),
        Capture(order_id="o2"),
    )
    assert WalletState.model_validate_json(state.model_dump_json()) == state


# --- properties ----------------------------------------------------------------------------

ORDER_IDS = st.sampled_from(["o1", "o2", "o3"])
AMOUNTS = st.integers(min_value=1, max_value=800)
COMMANDS = st.one_of(
    st.builds(Deposit, amount=AMOUNTS),
    st.builds(Authorize, order_id=ORDER_IDS, amount=AMOUNTS),
    st.builds(Capture, order_id=ORDER_IDS),
    st.builds(Void, order_id=ORDER_IDS),
)


DECIDER = Decider(decide=decide, evolve=evolve, events=EVENTS.values(), refusal=HoldNotFoundError)


class TestWalletProperties(ClaimsProperties[WalletState]):
    decider = DECIDER
    commands = COMMANDS

    def initial(self) -> WalletState:
        return initial_state()

    def check(self, state: WalletState) -> None:
        assert_invariants(state)

    def may_repeat(self, state: WalletState, command: Command) -> bool:
        # a deposit adds up; a declined Authorize may succeed after a deposit
        held = state.holds.keys() | set(state.captured_orders)
        return isinstance(command, Deposit) or (
            isinstance(command, Authorize) and command.order_id not in held
        )
