"""The router's chained reaction to order.placed: the Reserves carry the marker, their
answers become one OnStockOutcomes (marked too), its payment request the Authorize, and
the wallet's answer the order's call; the events a marked call caused are not routed
while every other one is (rolling upgrades both ways)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors import catalog
from actors.inventory import model as inventory
from actors.order import model as order
from actors.order import saga
from actors.reactions import (
    AUTHORIZE,
    KNOWN_EVENTS,
    ON_STOCK_OUTCOMES,
    RESERVE,
    SPECS,
    build_router,
)
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.router import (
    DeadLetterError,
    Delivery,
    EventRouter,
    Plan,
    Reaction,
    chained_by,
)
from actors.wallet import model as wallet

SAMPLES = Path(__file__).parents[1] / "contracts" / "samples"
ROUTER = build_router()
PLACED = json.loads((SAMPLES / "order.placed.v1.json").read_text())
PLACED_ID = PLACED["event_id"]
ORDER_ID = PLACED["aggregate_id"]


def _cloud_event(sample: str, **envelope: Any) -> dict[str, Any]:
    data = {**json.loads((SAMPLES / sample).read_text()), **envelope}
    return {"id": data["event_id"], "data": data}


def _answer(event_type: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"event_id": "e", "type": event_type, "aggregate_version": 3, **fields}]


RESERVED = _answer(inventory.StockReserved.type)


def test_the_reserves_of_order_placed_are_their_own_cause() -> None:
    plan = ROUTER.plan(catalog.ORDERS, {"id": PLACED_ID, "data": PLACED})

    assert [(c.actor_id, c.method) for c in plan.calls] == [
        ("tea-green-100g", "Reserve"),
        ("mug-12m", "Reserve"),
    ]
    for call in plan.calls:
        assert call.payload["message_id"] == call.payload["causation_id"] == f"{PLACED_ID}/Reserve"
    assert plan.then is not None


def test_the_answers_become_one_outcomes_call_in_line_order() -> None:
    plan = ROUTER.plan(catalog.ORDERS, {"id": PLACED_ID, "data": PLACED})
    rejected = _answer(inventory.StockRejected.type, reason="discontinued")

    [call] = plan.follow_up([RESERVED, rejected]).calls

    assert (call.actor_type, call.actor_id, call.method) == (
        catalog.ORDER_ACTOR,
        ORDER_ID,
        "OnStockOutcomes",
    )
    assert call.payload == {
        "outcomes": [
            {"sku": "tea-green-100g", "outcome": "reserved", "reason": None},
            {"sku": "mug-12m", "outcome": "rejected", "reason": "discontinued"},
        ],
        "message_id": f"{PLACED_ID}/OnStockOutcomes",
        "correlation_id": PLACED["correlation_id"],
        "causation_id": f"{PLACED_ID}/OnStockOutcomes",  # marked: a step follows it
    }


def test_an_answer_with_no_event_means_the_order_already_holds_the_stock() -> None:
    """Inventory records nothing for a Reserve of an order that holds (or held and
    committed) stock of the SKU: an answer past the inbox's TTL."""
    plan = ROUTER.plan(catalog.ORDERS, {"id": PLACED_ID, "data": PLACED})

    [call] = plan.follow_up([[], RESERVED]).calls

    assert [o["outcome"] for o in call.payload["outcomes"]] == ["reserved", "reserved"]


def test_a_rejection_answered_without_a_reason_has_the_only_reason_inventory_gives() -> None:
    """An inventory from before the reason was in its answer, or an answer it recorded."""
    plan = ROUTER.plan(catalog.ORDERS, {"id": PLACED_ID, "data": PLACED})

    [call] = plan.follow_up([RESERVED, _answer(inventory.StockRejected.type)]).calls

    assert call.payload["outcomes"][1]["reason"] == inventory.INSUFFICIENT_STOCK


def test_answers_that_make_no_valid_command_are_a_dead_letter() -> None:
    plan = ROUTER.plan(catalog.ORDERS, {"id": PLACED_ID, "data": PLACED})

    with pytest.raises(DeadLetterError) as caught:
        plan.follow_up([RESERVED, _answer(inventory.StockRejected.type, reason="x" * 201)])

    assert caught.value.code == "event.invalid_command"


@pytest.mark.parametrize(
    ("sample", "method"),
    [
        ("inventory.stock_reserved.v1.json", "OnStockReserved"),
        ("inventory.stock_rejected.v1.json", "OnStockRejected"),
    ],
)
def test_a_stock_event_a_marked_reserve_caused_is_not_routed_any_other_is(
    sample: str, method: str
) -> None:
    marked = _cloud_event(sample, causation_id=f"{PLACED_ID}/Reserve")
    plain = _cloud_event(sample, causation_id=PLACED_ID)  # an old router's Reserve
    by_hand = _cloud_event(sample, causation_id="")  # an operator's, without one

    assert ROUTER.plan(catalog.INVENTORY, marked).calls == ()
    for event in (plain, by_hand):
        [call] = ROUTER.plan(catalog.INVENTORY, event).calls
        assert (call.actor_id, call.method) == (event["data"]["payload"]["order_id"], method)


def test_chained_by_reads_the_causation_id() -> None:
    envelope = EventEnvelope.model_validate(
        _cloud_event("inventory.stock_reserved.v1.json")["data"]
    )
    assert not chained_by(envelope, RESERVE)
    assert chained_by(envelope.model_copy(update={"causation_id": "x/Reserve"}), RESERVE)
    assert not chained_by(envelope.model_copy(update={"causation_id": "x/Release"}), RESERVE)


def test_an_unchained_plan_has_nothing_to_follow() -> None:
    plan = ROUTER.plan(catalog.ORDERS, _cloud_event("order.payment_requested.v1.json"))

    assert plan.then is None
    assert plan.follow_up([[]]).calls == ()
    [call] = plan.calls
    assert call.payload["causation_id"] == plan.envelope.event_id


def _outcomes_plan() -> Plan:
    """order.placed's plan at its second step: OnStockOutcomes, both lines reserved."""
    return ROUTER.plan(catalog.ORDERS, {"id": PLACED_ID, "data": PLACED}).follow_up(
        [RESERVED, RESERVED]
    )


REQUESTED = [
    *_answer(order.OrderLineReserved.type),
    {"event_id": "req-1", "type": order.PaymentRequested.type, "aggregate_version": 4}
    | {"customer_id": "cust-42", "amount": 2_100},
]


def test_the_payment_request_the_order_answers_becomes_the_authorize_routing_it_would_send() -> (
    None
):
    [authorize] = _outcomes_plan().follow_up([REQUESTED]).calls

    event = _cloud_event("order.payment_requested.v1.json", event_id="req-1", aggregate_id=ORDER_ID)
    [routed] = ROUTER.plan(catalog.ORDERS, event).calls
    assert (authorize.actor_type, authorize.actor_id, authorize.method) == (
        routed.actor_type,
        routed.actor_id,
        routed.method,
    )
    assert authorize.payload == {
        **routed.payload,  # the same message id: the wallet's inbox takes one of the two
        "correlation_id": PLACED["correlation_id"],
        "causation_id": "req-1/Authorize",  # marked: a step follows it
    }
    assert routed.payload["message_id"] == "req-1/Authorize"


def test_an_order_that_answers_no_customer_or_amount_is_asked_for_order_placeds() -> None:
    """An order from before `answered` named them, or an answer it recorded."""
    bare = [{"event_id": "req-1", "type": order.PaymentRequested.type, "aggregate_version": 4}]

    [authorize] = _outcomes_plan().follow_up([bare]).calls

    assert authorize.actor_id == PLACED["payload"]["customer_id"]
    assert authorize.payload["amount"] == PLACED["payload"]["total"]


def test_an_order_that_requests_no_payment_ends_the_chain() -> None:
    cancelled = _answer(order.OrderCancelled.type)

    follow = _outcomes_plan().follow_up([cancelled])

    assert follow.calls == ()
    assert follow.then is None


@pytest.mark.parametrize(
    ("event_type", "fields", "method", "command"),
    [
        (wallet.PaymentAuthorized.type, {}, "OnPaymentAuthorized", {}),
        (
            wallet.PaymentDeclined.type,
            {"reason": "frozen"},
            "OnPaymentDeclined",
            {"reason": "frozen"},
        ),
        # a wallet from before `answered` named the reason: the only one it gives
        (wallet.PaymentDeclined.type, {}, "OnPaymentDeclined", {"reason": "insufficient_funds"}),
    ],
)
def test_the_wallets_answer_becomes_the_orders_call_routing_would_send(
    event_type: str, fields: dict[str, Any], method: str, command: dict[str, Any]
) -> None:
    authorize = _outcomes_plan().follow_up([REQUESTED])
    answer = [{"event_id": "pay-1", "type": event_type, "aggregate_version": 2, **fields}]

    last = authorize.follow_up([answer])

    [call] = last.calls
    assert (call.actor_type, call.actor_id, call.method) == (catalog.ORDER_ACTOR, ORDER_ID, method)
    assert call.payload == {
        **command,
        "message_id": f"pay-1/{method}",
        "correlation_id": PLACED["correlation_id"],
        "causation_id": "pay-1",  # the last step: unmarked, as routing the event sends it
    }
    assert last.then is None


@pytest.mark.parametrize(
    ("sample", "topic", "marker", "method"),
    [
        ("order.payment_requested.v1.json", catalog.ORDERS, "OnStockOutcomes", "Authorize"),
        ("wallet.payment_authorized.v1.json", catalog.WALLET, "Authorize", "OnPaymentAuthorized"),
        ("wallet.payment_declined.v1.json", catalog.WALLET, "Authorize", "OnPaymentDeclined"),
    ],
)
def test_a_payment_event_a_marked_call_caused_is_not_routed_any_other_is(
    sample: str, topic: str, marker: str, method: str
) -> None:
    marked = _cloud_event(sample, causation_id=f"x/{marker}")
    plain = _cloud_event(sample, causation_id="x")  # an older router's call
    by_hand = _cloud_event(sample, causation_id="")
    other = _cloud_event(sample, causation_id="x/Reserve")  # some other chained call

    assert ROUTER.plan(topic, marked).calls == ()
    for event in (plain, by_hand, other):
        [call] = ROUTER.plan(topic, event).calls
        assert call.method == method


def test_the_markers_name_the_methods_of_the_chained_calls() -> None:
    assert inventory.INVENTORY.commands[RESERVE] is inventory.Reserve
    assert saga.ORDER.commands[ON_STOCK_OUTCOMES] is saga.StockOutcomesForOrder
    assert wallet.WALLET.commands[AUTHORIZE] is wallet.Authorize


def _reserve(env: EventEnvelope, event: order.OrderPlaced) -> list[Delivery]:
    return []


def test_a_chained_reaction_must_be_the_only_reaction_to_its_event() -> None:
    def then(*_: Any) -> list[Delivery]:
        return []

    reactions = [
        Reaction(catalog.ORDERS, order.OrderPlaced, _reserve, then=(then,)),
        Reaction(catalog.ORDERS, order.OrderPlaced, _reserve),
    ]
    with pytest.raises(ValueError, match="must be alone"):
        EventRouter(reactions, specs=SPECS, known=KNOWN_EVENTS)


def test_the_stock_outcomes_command_is_what_the_order_takes() -> None:
    assert saga.ORDER.method_for(saga.StockOutcomesForOrder) == "OnStockOutcomes"
