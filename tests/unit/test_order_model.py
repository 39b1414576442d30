"""Order's decider: the saga's transitions, refusals, late facts and compensation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.order.model import (
    TERMINAL,
    InvalidTransitionError,
    LatePaymentVoided,
    LateReservationReleased,
    Line,
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
    UnknownOrderLineError,
    can_move,
    reached,
)
from actors.order.saga import (
    ORDER,
    Cancel,
    DeadlinePassed,
    OrderState,
    PaymentAuthorizedForOrder,
    PaymentDeclinedForOrder,
    Place,
    ShipmentDispatched,
    ShipmentFailed,
    StockRejectedForOrder,
    StockReservedForOrder,
    decide,
    evolve,
    initial_state,
)
from actors.toolkit.domain import Command, Event
from actors.toolkit.errors import ConflictError, DomainError, NotFoundError, error_from_dict

LINES = (Line(sku="A", quantity=2, unit_price=150), Line(sku="B", quantity=1, unit_price=1_000))
PLACE = Place(customer_id="c1", lines=LINES)
TOTAL = 1_300
SKUS = ("A", "B")

RESERVED_A = StockReservedForOrder(sku="A")
REJECTED_A = StockRejectedForOrder(sku="A")
AUTHORIZED = PaymentAuthorizedForOrder()
DECLINED = PaymentDeclinedForOrder()
DISPATCHED = ShipmentDispatched(shipment_id="s1")
FAILED = ShipmentFailed(reason="no courier")
FACTS: tuple[Command, ...] = (RESERVED_A, REJECTED_A, AUTHORIZED, DECLINED, DISPATCHED, FAILED)


def run(state: OrderState, *commands: Command) -> OrderState:
    for command in commands:
        for event in decide(state, command):
            state = evolve(state, event)
    return state


def placed() -> OrderState:
    return run(initial_state(), PLACE)


def authorizing() -> OrderState:
    return run(placed(), StockReservedForOrder(sku="A"), StockReservedForOrder(sku="B"))


def confirmed() -> OrderState:
    return run(authorizing(), PaymentAuthorizedForOrder())


def shipped() -> OrderState:
    return run(confirmed(), ShipmentDispatched(shipment_id="s1"))


def cancelled() -> OrderState:
    return run(placed(), Cancel(reason="changed my mind"))


def cancelled_as(reason: str, *, void: bool) -> list[OrderCancelled]:
    return [OrderCancelled(reason=reason, customer_id="c1", release_skus=SKUS, void_payment=void)]


# --- placing -------------------------------------------------------------------------------


def test_placing_records_customer_lines_and_total_and_starts_reserving() -> None:
    events = decide(initial_state(), PLACE)
    assert events == [OrderPlaced(customer_id="c1", lines=LINES, total=TOTAL)]
    state = evolve(initial_state(), events[0])
    assert (state.status, state.customer_id, state.lines, state.total) == (
        Status.RESERVING,
        "c1",
        LINES,
        TOTAL,
    )
    assert state.step == "reserving"


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [{"sku": f"S{i}", "quantity": 1, "unit_price": 1} for i in range(51)],
        [
            {"sku": "A", "quantity": 1, "unit_price": 1},
            {"sku": "A", "quantity": 2, "unit_price": 1},
        ],
        [{"sku": "A", "quantity": 0, "unit_price": 1}],
        [{"sku": "A", "quantity": 1, "unit_price": 0}],
        [{"sku": "A/B", "quantity": 1, "unit_price": 1}],
    ],
)
def test_malformed_orders_are_refused_by_validation(lines: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        Place.model_validate({"customer_id": "c1", "lines": lines})


def test_an_order_of_fifty_lines_is_accepted() -> None:
    lines = [{"sku": f"S{i}", "quantity": 1, "unit_price": 1} for i in range(50)]
    assert Place.model_validate({"customer_id": "c1", "lines": lines}).total == 50


def test_placing_again_with_the_same_content_changes_nothing() -> None:
    assert decide(placed(), PLACE) == []
    assert decide(shipped(), Place(customer_id="c1", lines=LINES[::-1])) == []


@pytest.mark.parametrize(
    "place",
    [Place(customer_id="c2", lines=LINES), Place(customer_id="c1", lines=LINES[:1])],
)
def test_placing_again_with_different_content_is_a_conflict(place: Place) -> None:
    with pytest.raises(OrderConflictError) as caught:
        decide(placed(), place)
    assert isinstance(caught.value, ConflictError)
    assert caught.value.code == "order.conflict"


@pytest.mark.parametrize("command", [Cancel(), *FACTS])
def test_commands_for_an_order_never_placed_are_not_found(command: Command) -> None:
    with pytest.raises(OrderNotFoundError) as caught:
        decide(initial_state(), command)
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.code == "order.not_found"


def test_a_deadline_for_an_order_never_placed_changes_nothing() -> None:
    assert decide(initial_state(), DeadlinePassed(step="reserving")) == []


# --- reserving -----------------------------------------------------------------------------


def test_each_reserved_line_is_recorded() -> None:
    events = decide(placed(), StockReservedForOrder(sku="B"))
    assert events == [OrderLineReserved(sku="B")]
    state = evolve(placed(), events[0])
    assert (state.status, state.reserved_skus) == (Status.RESERVING, frozenset({"B"}))


def test_the_last_reserved_line_requests_payment_for_the_total() -> None:
    state = run(placed(), StockReservedForOrder(sku="A"))
    events = decide(state, StockReservedForOrder(sku="B"))
    assert events == [OrderLineReserved(sku="B"), PaymentRequested(customer_id="c1", amount=TOTAL)]
    assert run(state, StockReservedForOrder(sku="B")).status is Status.AUTHORIZING


def test_a_single_line_order_goes_straight_to_authorizing() -> None:
    state = run(initial_state(), Place(customer_id="c1", lines=LINES[:1]))
    assert run(state, StockReservedForOrder(sku="A")).step == "authorizing"


def test_a_redelivered_reservation_changes_nothing() -> None:
    state = run(placed(), StockReservedForOrder(sku="A"))
    assert decide(state, StockReservedForOrder(sku="A")) == []
    assert decide(authorizing(), StockReservedForOrder(sku="A")) == []


def test_a_reservation_for_a_sku_not_ordered_is_refused() -> None:
    with pytest.raises(UnknownOrderLineError) as caught:
        decide(placed(), StockReservedForOrder(sku="Z"))
    assert caught.value.code == "order.unknown_line"


def test_a_rejected_line_cancels_and_releases_every_sku_without_a_void() -> None:
    state = run(placed(), StockReservedForOrder(sku="B"))
    events = decide(state, StockRejectedForOrder(sku="A", reason="insufficient_stock"))
    reason = "stock rejected for A: insufficient_stock"
    assert events == cancelled_as(reason, void=False)
    after = evolve(state, events[0])
    assert (after.status, after.cancel_reason, after.step) == (Status.CANCELLED, reason, None)


def test_a_stale_rejection_of_a_reserved_sku_changes_nothing() -> None:
    state = run(placed(), StockReservedForOrder(sku="A"))
    assert decide(state, StockRejectedForOrder(sku="A")) == []
    assert decide(confirmed(), StockRejectedForOrder(sku="B")) == []


# --- authorizing, shipping -----------------------------------------------------------------


def test_an_authorized_payment_confirms_the_order() -> None:
    events = decide(authorizing(), PaymentAuthorizedForOrder())
    assert events == [OrderConfirmed(customer_id="c1", lines=LINES)]
    assert confirmed().step == "shipping"


def test_a_declined_payment_cancels_with_release_and_void() -> None:
    events = decide(authorizing(), PaymentDeclinedForOrder(reason="insufficient_funds"))
    assert events == cancelled_as("payment declined: insufficient_funds", void=True)


def test_payment_facts_after_confirmation_change_nothing() -> None:
    assert decide(confirmed(), PaymentAuthorizedForOrder()) == []
    assert decide(confirmed(), PaymentDeclinedForOrder()) == []


@pytest.mark.parametrize("command", [AUTHORIZED, DECLINED, DISPATCHED, FAILED])
def test_facts_that_cannot_come_yet_are_invalid_transitions(command: Command) -> None:
    with pytest.raises(InvalidTransitionError):
        decide(placed(), command)


@pytest.mark.parametrize("command", [DISPATCHED, FAILED])
def test_shipment_facts_before_confirmation_are_invalid_transitions(command: Command) -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        decide(authorizing(), command)
    assert caught.value.context == {"status": "authorizing"}


def test_a_dispatched_shipment_ships_capturing_payment_and_committing_every_sku() -> None:
    events = decide(confirmed(), ShipmentDispatched(shipment_id="s1"))
    assert events == [
        OrderShipped(
            shipment_id="s1", customer_id="c1", amount=TOTAL, capture_payment=True, commit_skus=SKUS
        )
    ]
    assert shipped().status is Status.SHIPPED


def test_a_failed_shipment_cancels_with_release_and_void() -> None:
    events = decide(confirmed(), ShipmentFailed(reason="no courier"))
    assert events == cancelled_as("shipment failed: no courier", void=True)


# --- cancelling, deadlines -----------------------------------------------------------------


@pytest.mark.parametrize(("state", "void"), [(placed(), False), (authorizing(), True)])
def test_the_customer_can_cancel_until_the_order_is_confirmed(
    state: OrderState, void: bool
) -> None:
    assert decide(state, Cancel(reason="changed my mind")) == cancelled_as(
        "changed my mind", void=void
    )


def test_a_confirmed_order_is_with_shipping_and_cannot_be_cancelled_by_the_customer() -> None:
    with pytest.raises(OrderWithShippingError) as caught:
        decide(confirmed(), Cancel())
    assert caught.value.code == "order.with_shipping"


def test_a_shipped_order_cannot_be_cancelled() -> None:
    with pytest.raises(OrderAlreadyShippedError) as caught:
        decide(shipped(), Cancel())
    assert caught.value.code == "order.already_shipped"


def test_cancelling_a_cancelled_order_changes_nothing() -> None:
    assert decide(cancelled(), Cancel(reason="again")) == []


@pytest.mark.parametrize(
    ("state", "step", "void"),
    [
        (placed(), "reserving", False),
        (authorizing(), "authorizing", True),
        (confirmed(), "shipping", True),
    ],
)
def test_a_deadline_cancels_an_order_still_in_that_step(
    state: OrderState, step: str, void: bool
) -> None:
    command = DeadlinePassed.model_validate({"step": step})
    assert decide(state, command) == cancelled_as(f"deadline passed while {step}", void=void)


@pytest.mark.parametrize("state", [authorizing(), confirmed(), shipped(), cancelled()])
def test_a_deadline_for_a_finished_step_changes_nothing(state: OrderState) -> None:
    assert decide(state, DeadlinePassed(step="reserving")) == []


def test_a_deadline_for_an_unknown_step_is_refused_by_validation() -> None:
    with pytest.raises(ValidationError):
        DeadlinePassed.model_validate({"step": "confirmed"})


# --- late facts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [*FACTS, StockReservedForOrder(sku="Z"), DeadlinePassed(step="shipping")]
)
def test_facts_after_shipment_change_nothing(command: Command) -> None:
    assert decide(shipped(), command) == []


@pytest.mark.parametrize(
    "command", [REJECTED_A, DECLINED, DISPATCHED, FAILED, StockRejectedForOrder(sku="Z")]
)
def test_facts_after_cancellation_change_nothing(command: Command) -> None:
    assert decide(cancelled(), command) == []


def test_a_reservation_after_cancellation_is_released() -> None:
    events = decide(cancelled(), StockReservedForOrder(sku="A"))
    assert events == [LateReservationReleased(sku="A")]
    assert run(cancelled(), StockReservedForOrder(sku="A")) == cancelled()


def test_an_authorization_after_cancellation_is_voided() -> None:
    events = decide(cancelled(), PaymentAuthorizedForOrder())
    assert events == [LatePaymentVoided(customer_id="c1")]
    assert run(cancelled(), PaymentAuthorizedForOrder()) == cancelled()


# --- contract ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("order.not_found", OrderNotFoundError),
        ("order.conflict", OrderConflictError),
        ("order.already_shipped", OrderAlreadyShippedError),
        ("order.invalid_transition", InvalidTransitionError),
        ("order.unknown_line", UnknownOrderLineError),
    ],
)
def test_errors_come_back_by_code(code: str, error: type[Exception]) -> None:
    assert type(error_from_dict({"code": code}, ORDER.error_codes)) is error


def test_state_survives_a_json_round_trip() -> None:
    for state in (placed(), confirmed(), cancelled()):
        assert OrderState.model_validate_json(state.model_dump_json()) == state


def test_the_status_graph_only_moves_forward_and_ends_in_terminal_states() -> None:
    assert all(not can_move(end, status) for end in TERMINAL for status in Status)
    assert can_move(Status.CONFIRMED, Status.CANCELLED)
    assert not can_move(Status.CONFIRMED, Status.AUTHORIZING)
    assert reached(Status.SHIPPED, Status.CONFIRMED)
    assert not reached(Status.RESERVING, Status.AUTHORIZING)


# --- properties: one order under random, duplicated, reordered facts ----------------------

COMMANDS = st.one_of(
    st.sampled_from([PLACE, Place(customer_id="c2", lines=LINES), Cancel(), *FACTS]),
    st.sampled_from([*SKUS, "Z"]).map(lambda sku: StockReservedForOrder(sku=sku)),
    st.sampled_from(SKUS).map(lambda sku: StockRejectedForOrder(sku=sku)),
    st.sampled_from(["reserving", "authorizing", "shipping"]).map(
        lambda step: DeadlinePassed.model_validate({"step": step})
    ),
)


def attempt(state: OrderState, command: Command) -> list[Event] | DomainError:
    try:
        return decide(state, command)
    except DomainError as error:
        return error


def check_refusal(state: OrderState, error: DomainError) -> None:
    if state.status in TERMINAL:  # late facts never raise; only the customer is told no
        assert isinstance(error, OrderConflictError | OrderAlreadyShippedError)
    else:
        assert state.status is Status.NEW or not isinstance(error, OrderNotFoundError)


def check_history(state: OrderState, history: list[Event]) -> None:
    kinds = [type(event) for event in history]
    assert kinds.count(OrderCancelled) == (state.status is Status.CANCELLED)
    assert kinds.count(OrderShipped) == (state.status is Status.SHIPPED)
    assert kinds.count(OrderConfirmed) <= 1
    assert kinds.count(PaymentRequested) <= 1
    assert state.status is not Status.SHIPPED or OrderConfirmed in kinds
    for index, event in enumerate(history):
        earlier = kinds[:index]
        if isinstance(event, OrderCancelled):
            assert event.release_skus == SKUS
            assert event.void_payment == (PaymentRequested in earlier)
        if isinstance(event, PaymentRequested):
            assert earlier.count(OrderLineReserved) == len(SKUS)
        if isinstance(event, LateReservationReleased | LatePaymentVoided):
            assert OrderCancelled in earlier


@st.composite
def scripts(draw: st.DrawFn) -> list[Command]:
    """The happy path (reservations in any order, maybe cut short) interleaved with noise."""
    reservations = draw(st.permutations([RESERVED_A, StockReservedForOrder(sku="B")]))
    happy = [PLACE, *reservations, AUTHORIZED, DISPATCHED][: draw(st.integers(0, 5))]
    noise = draw(st.lists(COMMANDS, max_size=12))
    merged: list[Command] = []
    while happy or noise:
        source = happy if happy and (not noise or draw(st.booleans())) else noise
        merged.append(source.pop(0))
    return merged


@settings(max_examples=200, deadline=None, database=None)
@given(commands=scripts())
def test_random_facts_only_move_the_order_forward_and_end_it_once(
    commands: list[Command],
) -> None:
    state, history = initial_state(), []
    for command in commands:
        outcome = attempt(state, command)
        if isinstance(outcome, DomainError):
            check_refusal(state, outcome)
            continue
        before = state
        for event in outcome:
            after = evolve(state, event)
            assert after.status is state.status or can_move(state.status, after.status)
            state = after
        assert before.status not in TERMINAL or state == before
        history.extend(outcome)
    check_history(state, history)
    assert OrderState.model_validate_json(state.model_dump_json()) == state
