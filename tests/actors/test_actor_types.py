"""Every event-sourced actor is wired the way the SDK's runtime looks for it."""

from __future__ import annotations

import pytest
from dapr.actor.runtime._type_information import ActorTypeInformation
from dapr.actor.runtime._type_utils import get_dispatchable_attrs

from actors.inventory.actor import InventoryActor
from actors.order.actor import OrderActor
from actors.wallet.actor import WalletActor
from apps.actor_host.main import EVENT_SOURCED

COMMON = {"Get", "History", "Replay"}
METHODS = {
    "InventoryActor": {"Restock", "Reserve", "Release", "Commit"},
    "WalletActor": {"Deposit", "Authorize", "Capture", "Void"},
    "OrderActor": {
        "Place",
        "Cancel",
        "OnStockReserved",
        "OnStockRejected",
        "OnPaymentAuthorized",
        "OnPaymentDeclined",
        "OnShipmentDispatched",
        "OnShipmentFailed",
    },
}


@pytest.mark.parametrize("actor", EVENT_SOURCED, ids=lambda a: a.__name__)
def test_the_sdk_sees_every_actor_as_remindable_so_outbox_and_deadline_reminders_arrive(
    actor: type,
) -> None:
    assert ActorTypeInformation.create(actor).is_remindable()


@pytest.mark.parametrize("actor", EVENT_SOURCED, ids=lambda a: a.__name__)
def test_the_sdk_dispatches_every_wire_method(actor: type) -> None:
    assert set(get_dispatchable_attrs(actor)) == COMMON | METHODS[actor.__name__]


def test_every_actor_type_has_its_own_upcaster_registry() -> None:
    registries = {id(cls.upcasters) for cls in (InventoryActor, OrderActor, WalletActor)}
    assert len(registries) == 3
