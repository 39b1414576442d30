"""Inventory's decider: stock rules, idempotent reservations, ledger invariants."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.inventory.model import (
    EVENTS,
    INSUFFICIENT_STOCK,
    INVENTORY,
    MAX_ON_HAND,
    SETTLED_MEMORY,
    Commit,
    InventoryState,
    Release,
    ReservationNotFoundError,
    Reserve,
    Restock,
    StockCommitted,
    StockLimitExceededError,
    StockRejected,
    StockReleased,
    StockReserved,
    StockRestocked,
    decide,
    evolve,
    initial_state,
)
from actors.toolkit.domain import Command
from actors.toolkit.errors import NotFoundError, RuleViolationError, error_from_dict
from tests.unit.deciders import ClaimsProperties, Decider

SKU = "SKU-1"


def run(state: InventoryState, *commands: Command) -> InventoryState:
    for command in commands:
        for event in decide(state, command):
            state = evolve(state, event)
    return state


def stocked(quantity: int = 10) -> InventoryState:
    return run(initial_state(), Restock(sku=SKU, quantity=quantity))


def assert_invariants(state: InventoryState) -> None:
    assert state.on_hand >= 0
    assert all(qty > 0 for qty in state.reservations.values())
    assert state.reserved <= state.on_hand
    assert state.restocked_total - state.committed_total == state.on_hand


def test_a_new_sku_has_nothing_on_hand() -> None:
    state = initial_state()
    assert (state.on_hand, state.reservations, state.available) == (0, {}, 0)


def test_restocking_adds_to_on_hand_and_the_restocked_total() -> None:
    state = initial_state()
    events = decide(state, Restock(sku=SKU, quantity=7))
    assert events == [StockRestocked(sku=SKU, quantity=7)]
    state = run(state, Restock(sku=SKU, quantity=7), Restock(sku=SKU, quantity=3))
    assert (state.on_hand, state.restocked_total) == (10, 10)


def test_restocking_beyond_the_stock_limit_is_refused() -> None:
    state = InventoryState(on_hand=MAX_ON_HAND, restocked_total=MAX_ON_HAND)
    with pytest.raises(StockLimitExceededError) as caught:
        decide(state, Restock(sku=SKU, quantity=1))
    assert caught.value.code == "inventory.stock_limit_exceeded"
    assert isinstance(caught.value, RuleViolationError)


def test_reserving_available_stock_holds_it_for_the_order() -> None:
    state = stocked(10)
    events = decide(state, Reserve(sku=SKU, order_id="o1", quantity=4))
    assert events == [StockReserved(order_id="o1", sku=SKU, quantity=4)]
    state = evolve(state, events[0])
    assert (state.on_hand, state.reservations, state.available) == (10, {"o1": 4}, 6)


def test_reserving_more_than_available_is_rejected() -> None:
    state = stocked(3)
    events = decide(state, Reserve(sku=SKU, order_id="o1", quantity=4))
    assert events == [StockRejected(order_id="o1", sku=SKU, quantity=4, reason=INSUFFICIENT_STOCK)]
    assert evolve(state, events[0]) == state


def test_reserved_stock_is_not_available_to_other_orders() -> None:
    state = run(stocked(5), Reserve(sku=SKU, order_id="o1", quantity=4))
    events = decide(state, Reserve(sku=SKU, order_id="o2", quantity=2))
    assert [type(e) for e in events] == [StockRejected]


def test_reserving_again_for_the_same_order_changes_nothing() -> None:
    state = run(stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4))
    assert decide(state, Reserve(sku=SKU, order_id="o1", quantity=4)) == []
    assert decide(state, Reserve(sku=SKU, order_id="o1", quantity=9)) == []


def test_reserving_for_an_already_committed_order_changes_nothing() -> None:
    state = run(
        stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4), Commit(sku=SKU, order_id="o1")
    )
    assert decide(state, Reserve(sku=SKU, order_id="o1", quantity=4)) == []


def test_releasing_frees_the_reservation() -> None:
    state = run(stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4))
    events = decide(state, Release(sku=SKU, order_id="o1"))
    assert events == [StockReleased(order_id="o1", sku=SKU, quantity=4)]
    state = evolve(state, events[0])
    assert (state.on_hand, state.reservations, state.available) == (10, {}, 10)


def test_releasing_an_unknown_or_released_order_changes_nothing() -> None:
    state = run(
        stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4), Release(sku=SKU, order_id="o1")
    )
    assert decide(state, Release(sku=SKU, order_id="o1")) == []
    assert decide(state, Release(sku=SKU, order_id="never")) == []


def test_stock_can_be_reserved_again_after_a_release() -> None:
    state = run(
        stocked(4), Reserve(sku=SKU, order_id="o1", quantity=4), Release(sku=SKU, order_id="o1")
    )
    assert [type(e) for e in decide(state, Reserve(sku=SKU, order_id="o1", quantity=4))] == [
        StockReserved
    ]


def test_committing_removes_the_reservation_and_the_stock() -> None:
    state = run(stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4))
    events = decide(state, Commit(sku=SKU, order_id="o1"))
    assert events == [StockCommitted(order_id="o1", sku=SKU, quantity=4)]
    state = evolve(state, events[0])
    assert (state.on_hand, state.reservations, state.committed_total) == (6, {}, 4)
    assert state.committed_orders == ("o1",)


def test_committing_twice_changes_nothing_the_second_time() -> None:
    state = run(
        stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4), Commit(sku=SKU, order_id="o1")
    )
    assert decide(state, Commit(sku=SKU, order_id="o1")) == []


def test_the_memory_of_committed_orders_is_bounded_and_forgets_the_oldest_first() -> None:
    state = stocked(SETTLED_MEMORY + 10)
    for n in range(SETTLED_MEMORY + 10):
        order = f"o{n}"
        state = run(
            state, Reserve(sku=SKU, order_id=order, quantity=1), Commit(sku=SKU, order_id=order)
        )
    assert len(state.committed_orders) == SETTLED_MEMORY
    assert state.committed_orders[0] == "o10"
    recent = f"o{SETTLED_MEMORY + 9}"
    assert decide(state, Reserve(sku=SKU, order_id=recent, quantity=1)) == []
    assert decide(state, Commit(sku=SKU, order_id=recent)) == []
    with pytest.raises(ReservationNotFoundError):  # beyond the memory: refused, never applied twice
        decide(state, Commit(sku=SKU, order_id="o0"))
    assert (state.on_hand, state.committed_total) == (0, SETTLED_MEMORY + 10)


def test_committing_without_a_reservation_is_refused() -> None:
    with pytest.raises(ReservationNotFoundError) as caught:
        decide(stocked(10), Commit(sku=SKU, order_id="o1"))
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.to_dict()["code"] == "inventory.reservation_not_found"
    assert caught.value.context == {"sku": SKU, "order_id": "o1"}


def test_releasing_a_committed_order_changes_nothing() -> None:
    state = run(
        stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4), Commit(sku=SKU, order_id="o1")
    )
    assert decide(state, Release(sku=SKU, order_id="o1")) == []


def test_decide_never_mutates_the_state() -> None:
    state = run(stocked(10), Reserve(sku=SKU, order_id="o1", quantity=4))
    before = state.model_dump()
    for command in (Reserve(sku=SKU, order_id="o2", quantity=1), Release(sku=SKU, order_id="o1")):
        for event in decide(state, command):
            evolve(state, event)
    assert state.model_dump() == before


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (Restock, {"sku": SKU, "quantity": 0}),
        (Restock, {"sku": SKU, "quantity": 1_000_001}),
        (Restock, {"sku": "-leading-dash", "quantity": 1}),
        (Restock, {"sku": "x" * 65, "quantity": 1}),
        (Reserve, {"sku": SKU, "order_id": "has.dot", "quantity": 1}),
        (Reserve, {"sku": SKU, "order_id": "o1", "quantity": -1}),
        (Release, {"sku": SKU, "order_id": ""}),
        (Commit, {"sku": SKU, "order_id": "o1", "extra": 1}),
    ],
)
def test_malformed_commands_are_refused_by_validation(
    model: type[Command], fields: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(fields)


def test_errors_come_back_by_code() -> None:
    error = error_from_dict(
        {"code": "inventory.reservation_not_found", "detail": "gone"}, INVENTORY.error_codes
    )
    assert isinstance(error, ReservationNotFoundError)


def test_state_survives_a_json_round_trip() -> None:
    state = run(
        stocked(10),
        Reserve(sku=SKU, order_id="o1", quantity=2),
        Reserve(sku=SKU, order_id="o2", quantity=3),
        Commit(sku=SKU, order_id="o2"),
    )
    assert InventoryState.model_validate_json(state.model_dump_json()) == state


# --- properties ----------------------------------------------------------------------------

ORDER_IDS = st.sampled_from(["o1", "o2", "o3"])
QUANTITIES = st.integers(min_value=1, max_value=8)
COMMANDS = st.one_of(
    st.builds(Restock, sku=st.just(SKU), quantity=QUANTITIES),
    st.builds(Reserve, sku=st.just(SKU), order_id=ORDER_IDS, quantity=QUANTITIES),
    st.builds(Release, sku=st.just(SKU), order_id=ORDER_IDS),
    st.builds(Commit, sku=st.just(SKU), order_id=ORDER_IDS),
)


DECIDER = Decider(
    decide=decide, evolve=evolve, events=EVENTS.values(), refusal=ReservationNotFoundError
)


class TestInventoryProperties(ClaimsProperties[InventoryState]):
    decider = DECIDER
    commands = COMMANDS

    def initial(self) -> InventoryState:
        return initial_state()

    def check(self, state: InventoryState) -> None:
        assert_invariants(state)

    def may_repeat(self, state: InventoryState, command: Command) -> bool:
        # a restock adds up; a rejected Reserve may succeed after a restock
        held = state.reservations.keys() | set(state.committed_orders)
        return isinstance(command, Restock) or (
            isinstance(command, Reserve) and command.order_id not in held
        )
