"""Event histories for the read-side tests, recorded by the real pure deciders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from actors.inventory import model as inventory
from actors.order import model as order
from actors.order import saga as order_saga
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import EventEnvelope
from actors.wallet import model as wallet

# A whole minute in the recent past: events fall in one counter minute, before "now".
T0 = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
MINUTE = T0.strftime("%Y-%m-%dT%H:%M")


def wrap(
    events: Sequence[Event],
    aggregate_type: str,
    aggregate_id: str,
    *,
    start: dt.datetime = T0,
    step: dt.timedelta = dt.timedelta(milliseconds=100),
) -> list[EventEnvelope]:
    """Envelopes with versions 1..n, `step` apart from `start`, as the actor base would save
    them."""
    return [
        EventEnvelope(
            event_id=f"{aggregate_id}-{version}",
            type=event.type,
            schema_version=1,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            occurred_at=start + step * version,
            payload=event.model_dump(mode="json"),
        )
        for version, event in enumerate(events, start=1)
    ]


def run(
    decide: Callable[[Any, Any], list[Event]],
    evolve: Callable[[Any, Any], Any],
    state: Any,
    commands: Sequence[Command],
    *,
    skip: type[Exception] | tuple[type[Exception], ...] = (),
) -> tuple[Any, list[Event]]:
    """Drive a real decider: the events are a history the actor could have recorded. A
    command refused with `skip` records nothing; any other refusal fails the test."""
    events: list[Event] = []
    for command in commands:
        try:
            decided = decide(state, command)
        except skip:
            continue
        for event in decided:
            state = evolve(state, event)
        events += decided
    return state, events


def order_events(
    order_id: str,
    customer: str,
    *facts: Command,
    lines: tuple[tuple[str, int, int], ...] = (("sku-a", 1, 500),),
    start: dt.datetime = T0,
) -> list[EventEnvelope]:
    place = order_saga.Place(
        customer_id=customer,
        lines=tuple(order.Line(sku=s, quantity=q, unit_price=p) for s, q, p in lines),
    )
    _, events = run(
        order_saga.decide, order_saga.evolve, order_saga.initial_state(), [place, *facts]
    )
    return wrap(events, "OrderActor", order_id, start=start)


def shipped(order_id: str, customer: str, *, start: dt.datetime = T0) -> list[EventEnvelope]:
    return order_events(
        order_id,
        customer,
        order_saga.StockReservedForOrder(sku="sku-a"),
        order_saga.PaymentAuthorizedForOrder(),
        order_saga.ShipmentDispatched(shipment_id="shp-1"),
        start=start,
    )


def stock_events(sku: str, *commands: Command) -> list[EventEnvelope]:
    state = inventory.initial_state()
    _, events = run(inventory.decide, inventory.evolve, state, commands)
    return wrap(events, "InventoryActor", sku)


def restocked(sku: str, quantity: int, *, reserve: int = 0) -> list[EventEnvelope]:
    commands: list[Command] = [inventory.Restock(sku=sku, quantity=quantity)]
    if reserve:
        commands.append(inventory.Reserve(sku=sku, order_id="ord-x", quantity=reserve))
    return stock_events(sku, *commands)


def wallet_events(customer: str, *commands: Command) -> list[EventEnvelope]:
    state = wallet.initial_state()
    _, events = run(wallet.decide, wallet.evolve, state, commands)
    return wrap(events, "WalletActor", customer)


def funded(customer: str, amount: int, *, hold: int = 0) -> list[EventEnvelope]:
    commands: list[Command] = [wallet.Deposit(amount=amount)]
    if hold:
        commands.append(wallet.Authorize(order_id="ord-x", amount=hold))
    return wallet_events(customer, *commands)


def cloud_event(envelope: EventEnvelope | dict[str, Any] | str) -> dict[str, Any]:
    """The CloudEvent daprd delivers to a subscriber."""
    data = envelope.model_dump(mode="json") if isinstance(envelope, EventEnvelope) else envelope
    return {
        "specversion": "1.0",
        "id": data["event_id"] if isinstance(data, dict) else "x",
        "type": data["type"] if isinstance(data, dict) else "x",
        "source": "actor-host",
        "datacontenttype": "application/json",
        "data": data,
    }
