"""Every event-sourced actor is wired the way the SDK's runtime looks for it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from dapr.actor.runtime._type_information import ActorTypeInformation
from dapr.actor.runtime._type_utils import get_dispatchable_attrs

from actors.inventory.actor import InventoryActor
from actors.inventory.model import INVENTORY, InventoryState, Restock
from actors.order.actor import OrderActor
from actors.order.deadlines import DeadlineSweeper
from actors.toolkit.actor import ActorDeps, EventSourcedActor
from actors.toolkit.aggregate import AggregateSpec, python_name
from actors.toolkit.interface import actor_interface, dispatchable
from actors.toolkit.store import InMemoryStores
from actors.toolkit.testing import activate
from actors.wallet.actor import WalletActor
from actors.wallet.model import Deposit
from apps.actor_host.main import EVENT_SOURCED
from cluster.config import ROOT
from tests.actors.doubles import RecordingPublisher

ActorClass = type[EventSourcedActor[Any]]
# Written out on purpose: a method renamed in a spec is a wire change, and shows up here.
COMMON = {"Get", "History", "Replay"}
METHODS = {
    "InventoryActor": {"Restock", "Reserve", "Release", "Commit"},
    "WalletActor": {"Deposit", "Authorize", "Capture", "Void"},
    "OrderActor": {
        "Place",
        "Cancel",
        "OnStockReserved",
        "OnStockRejected",
        "OnStockOutcomes",
        "OnPaymentAuthorized",
        "OnPaymentDeclined",
        "OnShipmentDispatched",
        "OnShipmentFailed",
        "CheckDeadline",  # the deadline sweeper's (actors.order.deadlines), not a command
    },
}


@pytest.mark.parametrize("actor", EVENT_SOURCED, ids=lambda a: a.__name__)
def test_the_sdk_sees_every_actor_as_remindable_so_outbox_and_deadline_reminders_arrive(
    actor: ActorClass,
) -> None:
    assert ActorTypeInformation.create(actor).is_remindable()


@pytest.mark.parametrize("actor", EVENT_SOURCED, ids=lambda a: a.__name__)
def test_the_sdk_dispatches_every_wire_method(actor: ActorClass) -> None:
    assert set(get_dispatchable_attrs(actor)) == COMMON | METHODS[actor.__name__]


def _readme_actor_methods() -> dict[str, set[str]]:
    """The README's table under "## Actors": each actor (or "every event-sourced actor")
    with the methods listed for it, rows without an actor continuing the one above."""
    section = (ROOT / "README.md").read_text().split("\n## Actors", 1)[1]
    table: dict[str, set[str]] = {}
    actor = ""
    for line in section.split("\n### BeaconActor", 1)[0].splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        method = re.match(r"`(\w+)`", cells[1]) if len(cells) == 4 else None
        if method is None:
            continue
        named = re.match(r"`(\w+)`", cells[0])
        actor = named.group(1) if named else (cells[0] or actor)
        table.setdefault(actor, set()).add(method.group(1))
    return table


def test_the_readme_lists_every_wire_method_of_every_actor_type_and_no_other() -> None:
    table = _readme_actor_methods()
    common = table.pop("every event-sourced actor")

    assert common == COMMON
    assert table == {
        **{a.__name__: set(get_dispatchable_attrs(a)) - common for a in EVENT_SOURCED},
        "DeadlineSweeper": set(get_dispatchable_attrs(DeadlineSweeper)),
    }


def test_every_actor_type_has_its_own_upcaster_registry() -> None:
    registries = {id(cls.upcasters) for cls in (InventoryActor, OrderActor, WalletActor)}
    assert len(registries) == 3


@pytest.mark.parametrize("actor", EVENT_SOURCED, ids=lambda a: a.__name__)
def test_the_generated_interface_is_what_an_actor_proxy_uses(
    actor: ActorClass,
) -> None:
    interface = actor_interface(actor.spec)
    wire = {getattr(m, "__actormethod__", None) for m in vars(interface).values()}
    assert wire - {None} == set(actor.spec.commands)
    assert issubclass(actor, interface)


@pytest.mark.parametrize("actor", EVENT_SOURCED, ids=lambda a: a.__name__)
async def test_each_generated_method_runs_its_own_command(
    actor: ActorClass,
) -> None:
    """A payload valid for no command: the refusal names the fields of the method's own."""
    instance = activate(
        actor, "x-1", ActorDeps(publisher=RecordingPublisher(), store=InMemoryStores())
    )
    for wire_name, model in actor.spec.commands.items():
        method = getattr(instance, python_name(wire_name))
        out = json.loads(await method(b'{"unknown_field": 1}'))
        assert out["error"]["code"] == "request.invalid"
        assert "unknown_field" in out["error"]["detail"], model.__name__


def test_a_spec_refuses_a_lower_case_or_built_in_method_name() -> None:
    with pytest.raises(ValueError, match="PascalCase"):
        AggregateSpec(actor_type="T", topic="t", commands={"restock": Restock}, events={})
    with pytest.raises(ValueError, match="built-in"):
        AggregateSpec(actor_type="T", topic="t", commands={"Get": Restock}, events={})


def test_dispatchable_refuses_a_class_not_named_as_its_actor_type() -> None:
    class Misnamed(EventSourcedActor[InventoryState]):
        spec = INVENTORY

    with pytest.raises(TypeError, match="must be named InventoryActor"):
        dispatchable(Misnamed)


def test_a_command_no_method_takes_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no method taking Deposit"):
        INVENTORY.method_of(Deposit(amount=1))
    assert INVENTORY.method_for(Restock) == "Restock"
    assert INVENTORY.method_for(Deposit) is None
