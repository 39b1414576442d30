"""The order's decider for StockOutcomesForOrder: every line's stock fact in one command,
decided as the single facts (StockReservedForOrder, StockRejectedForOrder) one after the
other would be."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.order.model import (
    LateReservationReleased,
    OrderCancelled,
    OrderLineReserved,
    OrderNotFoundError,
    PaymentRequested,
    Status,
    UnknownOrderLineError,
)
from actors.order.saga import (
    ORDER,
    StockOutcome,
    StockOutcomesForOrder,
    StockRejectedForOrder,
    StockReservedForOrder,
    decide,
    evolve,
    initial_state,
)
from actors.toolkit.commands import validate_command
from actors.toolkit.domain import Command, Event
from actors.toolkit.errors import DomainError
from tests.unit.test_order_model import (
    COMMANDS,
    SKUS,
    authorizing,
    cancelled,
    confirmed,
    placed,
    run,
    shipped,
)

RESERVED = {sku: StockOutcome(sku=sku, outcome="reserved") for sku in (*SKUS, "Z")}
REJECTED = {sku: StockOutcome(sku=sku, outcome="rejected") for sku in (*SKUS, "Z")}


def batch(*outcomes: StockOutcome) -> StockOutcomesForOrder:
    return StockOutcomesForOrder(outcomes=outcomes)


def one_by_one(state: Any, outcomes: tuple[StockOutcome, ...]) -> tuple[list[Event], Any]:
    """The events and end state of the single facts, decided in turn."""
    events: list[Event] = []
    for outcome in outcomes:
        decided = decide(state, outcome.fact())
        for event in decided:
            state = evolve(state, event)
        events += decided
    return events, state


def test_every_line_reserved_in_one_batch_requests_payment_in_the_same_turn() -> None:
    events = decide(placed(), batch(RESERVED["A"], RESERVED["B"]))

    assert events == [
        OrderLineReserved(sku="A"),
        OrderLineReserved(sku="B"),
        PaymentRequested(customer_id="c1", amount=1_300),
    ]
    assert run(placed(), batch(RESERVED["A"], RESERVED["B"])).status is Status.AUTHORIZING


def test_a_rejection_in_the_batch_cancels_with_its_sku_and_reason() -> None:
    outcome = StockOutcome(sku="B", outcome="rejected", reason="discontinued")

    events = decide(placed(), batch(RESERVED["A"], outcome))

    assert events[0] == OrderLineReserved(sku="A")
    assert isinstance(events[1], OrderCancelled)
    assert events[1].reason == "stock rejected for B: discontinued"
    assert events[1].release_skus == SKUS  # the reservation just recorded is released too


def test_a_rejection_then_a_reservation_is_the_cancel_then_the_late_release() -> None:
    events = decide(placed(), batch(REJECTED["A"], RESERVED["B"]))

    assert isinstance(events[0], OrderCancelled)
    assert events[0].reason == "stock rejected for A: insufficient_stock"
    assert events[1:] == [LateReservationReleased(sku="B")]
    assert (events, run(placed(), batch(REJECTED["A"], RESERVED["B"]))) == one_by_one(
        placed(), (REJECTED["A"], RESERVED["B"])
    )


def test_a_redelivered_batch_changes_nothing() -> None:
    both = batch(RESERVED["A"], RESERVED["B"])
    assert decide(run(placed(), both), both) == []
    rejected = batch(RESERVED["A"], REJECTED["B"])
    ended = run(placed(), rejected)
    # as its facts: a reservation after the end is released again (Release is idempotent)
    assert decide(ended, rejected) == [LateReservationReleased(sku="A")]
    assert run(ended, rejected) == ended


def test_after_a_cancel_every_reservation_in_the_batch_is_released_and_rejections_ignored() -> None:
    events = decide(cancelled(), batch(RESERVED["A"], REJECTED["B"]))

    assert events == [LateReservationReleased(sku="A")]


@pytest.mark.parametrize("state", [authorizing(), confirmed(), shipped()])
def test_a_batch_after_every_line_was_held_changes_nothing(state: Any) -> None:
    assert decide(state, batch(RESERVED["A"], REJECTED["B"])) == []


def test_a_batch_for_an_order_never_placed_is_not_found() -> None:
    with pytest.raises(OrderNotFoundError):
        decide(initial_state(), batch(RESERVED["A"]))


def test_a_batch_naming_a_sku_not_ordered_is_refused_whole() -> None:
    with pytest.raises(UnknownOrderLineError):
        decide(placed(), batch(RESERVED["A"], RESERVED["Z"]))


@pytest.mark.parametrize(
    "payload",
    [
        {"outcomes": []},
        {"outcomes": [{"sku": "A", "outcome": "held"}]},
        {"outcomes": [{"sku": "A"}]},
        {"outcomes": [{"sku": "A", "outcome": "rejected", "reason": ""}]},
        {"outcomes": [{"sku": "A", "outcome": "reserved", "extra": 1}]},
        {"outcomes": [{"sku": "A", "outcome": "reserved"}] * 51},
    ],
)
def test_malformed_batches_are_refused_by_validation(payload: dict[str, Any]) -> None:
    with pytest.raises(DomainError):
        validate_command(StockOutcomesForOrder, payload)
    with pytest.raises(ValidationError):
        StockOutcomesForOrder.model_validate(payload)


def test_the_batch_is_the_order_actors_on_stock_outcomes_method_and_reads_its_wire_form() -> None:
    assert ORDER.commands["OnStockOutcomes"] is StockOutcomesForOrder
    wire = {
        "outcomes": [
            {"sku": "A", "outcome": "reserved", "reason": None},
            {"sku": "B", "outcome": "rejected", "reason": "insufficient_stock"},
        ]
    }
    command = validate_command(StockOutcomesForOrder, wire)
    rejected = StockOutcome(sku="B", outcome="rejected", reason="insufficient_stock")
    assert command == batch(RESERVED["A"], rejected)
    assert [o.fact() for o in command.outcomes] == [
        StockReservedForOrder(sku="A"),
        StockRejectedForOrder(sku="B", reason="insufficient_stock"),
    ]
    assert command.model_dump(mode="json") == wire


# --- the batch is the single facts in sequence, from any state ------------------------------

OUTCOMES = st.builds(
    StockOutcome,
    sku=st.sampled_from([*SKUS, "Z"]),
    outcome=st.sampled_from(["reserved", "rejected"]),
    reason=st.sampled_from([None, "insufficient_stock", "discontinued"]),
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    before=st.lists(COMMANDS, max_size=10),
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=4).map(tuple),
)
def test_a_batch_gives_the_events_and_state_of_its_facts_one_by_one(
    before: list[Command], outcomes: tuple[StockOutcome, ...]
) -> None:
    state = initial_state()
    for command in before:
        try:
            state = run(state, command)
        except DomainError:
            continue
    try:
        expected = one_by_one(state, outcomes)
    except DomainError as refused:
        with pytest.raises(type(refused)):  # the batch is refused whole, nothing applied
            decide(state, batch(*outcomes))
        return
    events = decide(state, batch(*outcomes))
    after = state
    for event in events:
        after = evolve(after, event)
    assert (events, after) == expected
