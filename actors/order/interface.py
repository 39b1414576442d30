"""Wire contract of OrderActor (id = order id), generated from its spec, `saga.ORDER`,
plus CheckDeadline; and of the DeadlineSweeper (actors.order.deadlines).

For the Dapr SDK's ActorProxy: `ActorProxy.create("OrderActor", id, OrderActorInterface)`.
The methods, their payloads and the events they record are listed in the README
("Actors"); the one declaration is the spec's `commands` table.
"""

from __future__ import annotations

from dapr.actor import ActorInterface, actormethod

from actors.order.saga import ORDER
from actors.toolkit.interface import actor_interface

OrderActorInterface = actor_interface(ORDER)


class OrderDeadlineInterface(ActorInterface):
    @actormethod(name="CheckDeadline")  # type: ignore[untyped-decorator]
    async def check_deadline(self) -> bytes:
        """Cancel the order if its step's deadline passed (the sweeper calls it); result
        {"status", "action": "cancelled" | "waiting" | "ended"}."""


class DeadlineSweeperInterface(ActorInterface):
    @actormethod(name="Start")  # type: ignore[untyped-decorator]
    async def start(self) -> bytes:
        """Registers (again) this shard's `sweep` reminder; idempotent."""
