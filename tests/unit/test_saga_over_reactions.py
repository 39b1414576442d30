"""The whole saga over an unordered, duplicating bus, routed by the real reaction table.

Every event an aggregate records is wrapped in its envelope and planned by the real
event router (actors/reactions.py `build_router()`); every planned call is parsed back
the way the target actor parses its payload (strict JSON validation of the method's
command model), then decided by the pure deciders. So a reaction missing from the table,
a wrong method, or a payload the target refuses fails this test. The shipping partner is
the only stand-in: it answers each confirmed order on the shipments topic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import catalog
from actors.contracts import inbound
from actors.inventory import model as inventory
from actors.order import model as order
from actors.order import saga as order_saga
from actors.reactions import SPECS, build_router
from actors.toolkit.commands import split_meta, validate_command
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.router import Call
from actors.wallet import model as wallet

LINES = (
    order.Line(sku="A", quantity=2, unit_price=150),
    order.Line(sku="B", quantity=1, unit_price=1_000),
)
SKUS = ("A", "B")
CUSTOMER = "c1"
ORDERS = {
    "o1": order_saga.Place(customer_id=CUSTOMER, lines=LINES),
    "o2": order_saga.Place(
        customer_id=CUSTOMER, lines=(order.Line(sku="B", quantity=2, unit_price=500),)
    ),
}
ROUTER = build_router()
SPEC_OF = {spec.actor_type: spec for spec in SPECS}
Message = tuple[str, str, Command]  # (actor type, actor id, command)


@dataclass
class World:
    orders: dict[str, order_saga.OrderState]
    stock: dict[str, inventory.InventoryState]
    wallet: wallet.WalletState
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    history: list[tuple[str, Event]] = field(default_factory=list)  # (order id, event)

    def publish(self, topic: str, actor_type: str, actor_id: str, event: Event) -> list[Message]:
        """Wrap `event` as its actor would, and plan it with the real router."""
        key = (actor_type, actor_id)
        self.versions[key] = self.versions.get(key, 0) + 1
        envelope = EventEnvelope.wrap(
            event,
            aggregate_type=actor_type,
            aggregate_id=actor_id,
            aggregate_version=self.versions[key],
        )
        plan = ROUTER.plan(
            topic, {"id": envelope.event_id, "data": envelope.model_dump(mode="json")}
        )
        return [parsed(call) for call in plan.calls]


def parsed(call: Call) -> Message:
    """The call as its target actor reads it: method -> command model, strict JSON."""
    meta, fields = split_meta(dict(call.payload))
    assert meta.message_id == f"{meta.causation_id}/{call.method}"
    command = validate_command(SPEC_OF[call.actor_type].commands[call.method], fields)
    return (call.actor_type, call.actor_id, command)


def deliver(world: World, message: Message, *, ship: bool) -> list[Message]:
    actor_type, key, command = message
    if actor_type == catalog.ORDER_ACTOR:
        return _to_order(world, key, command, ship=ship)
    if actor_type == catalog.INVENTORY_ACTOR:
        events = inventory.decide(world.stock[key], command)
        world.stock[key] = functools.reduce(inventory.evolve, events, world.stock[key])
        topic = catalog.INVENTORY
    else:
        assert (actor_type, key) == (catalog.WALLET_ACTOR, CUSTOMER)
        events = wallet.decide(world.wallet, command)
        world.wallet = functools.reduce(wallet.evolve, events, world.wallet)
        topic = catalog.WALLET
    return [m for event in events for m in world.publish(topic, actor_type, key, event)]


def _to_order(world: World, key: str, command: Command, *, ship: bool) -> list[Message]:
    state = world.orders[key]
    try:
        events = order_saga.decide(state, command)
    except (order.OrderNotFoundError, order.OrderAlreadyShippedError, order.OrderWithShippingError):
        assert isinstance(command, order_saga.Cancel)  # the customer is told; nothing else may fail
        return []
    world.orders[key] = functools.reduce(order_saga.evolve, events, state)
    world.history += [(key, event) for event in events]
    out = [m for e in events for m in world.publish(catalog.ORDERS, catalog.ORDER_ACTOR, key, e)]
    for event in events:
        if isinstance(event, order.OrderConfirmed):  # the shipping partner answers
            answer: Event = (
                inbound.ShipmentDispatched(order_id=key, shipment_id=f"s-{key}")
                if ship
                else inbound.ShipmentFailed(order_id=key, reason="no courier")
            )
            out += world.publish(catalog.SHIPMENTS, "shipping", "partner", answer)
    return out


def check_outcome(world: World, order_id: str) -> None:
    state, lines = world.orders[order_id], ORDERS[order_id].lines
    ends = [
        e
        for key, e in world.history
        if key == order_id and isinstance(e, order.OrderShipped | order.OrderCancelled)
    ]
    assert len(ends) == 1
    assert order_id not in world.wallet.holds
    assert all(order_id not in world.stock[line.sku].reservations for line in lines)
    is_shipped = state.status is order.Status.SHIPPED
    assert (order_id in world.wallet.captured_orders) == is_shipped
    assert all((order_id in world.stock[x.sku].committed_orders) == is_shipped for x in lines)


@settings(max_examples=200, deadline=None, database=None)
@given(
    data=st.data(),
    on_hand=st.integers(0, 4),
    funds=st.sampled_from([0, 999, 1_300, 2_300]),
    cancels=st.lists(st.sampled_from(list(ORDERS)), max_size=2),
)
def test_every_saga_ends_once_and_leaves_no_reservation_or_hold_behind(
    data: st.DataObject, on_hand: int, funds: int, cancels: list[str]
) -> None:
    world = World(
        orders=dict.fromkeys(ORDERS, order_saga.initial_state()),
        stock={
            sku: inventory.InventoryState(on_hand=on_hand, restocked_total=on_hand) for sku in SKUS
        },
        wallet=wallet.WalletState(balance=funds, deposited_total=funds),
    )
    bag: list[Message] = [(catalog.ORDER_ACTOR, key, place) for key, place in ORDERS.items()]
    bag += [(catalog.ORDER_ACTOR, key, order_saga.Cancel()) for key in cancels]
    redeliveries = 10
    while bag:
        index = data.draw(st.integers(0, len(bag) - 1))
        again = redeliveries > 0 and data.draw(st.booleans())
        message = bag[index] if again else bag.pop(index)
        redeliveries -= again
        bag += deliver(world, message, ship=data.draw(st.booleans()))
    for order_id in ORDERS:
        check_outcome(world, order_id)
    shipped_lines = [
        line
        for key, place in ORDERS.items()
        if world.orders[key].status is order.Status.SHIPPED
        for line in place.lines
    ]
    for sku, state in world.stock.items():
        assert state.reservations == {}
        assert state.committed_total == sum(x.quantity for x in shipped_lines if x.sku == sku)
        assert state.restocked_total - state.committed_total == state.on_hand >= 0
    assert world.wallet.holds == {}
    assert world.wallet.captured_total == sum(line.amount for line in shipped_lines)


def test_a_restock_and_a_deposit_from_other_services_become_commands() -> None:
    world = World(orders={}, stock={"A": inventory.InventoryState()}, wallet=wallet.WalletState())
    restock = world.publish(
        catalog.RESTOCKS, "warehouse", "w1", inbound.StockReceived(sku="A", quantity=5)
    )
    deposit = world.publish(
        catalog.DEPOSITS, "payments", "p1", inbound.FundsDeposited(customer_id=CUSTOMER, amount=7)
    )
    assert restock == [(catalog.INVENTORY_ACTOR, "A", inventory.Restock(sku="A", quantity=5))]
    assert deposit == [(catalog.WALLET_ACTOR, CUSTOMER, wallet.Deposit(amount=7))]
