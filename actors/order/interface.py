"""Wire contract of OrderActor (id = order id), generated from its spec, `saga.ORDER`.

For the Dapr SDK's ActorProxy: `ActorProxy.create("OrderActor", id, OrderActorInterface)`.
The methods, their payloads and the events they record are listed in the README
("Actor methods"); the one declaration is the spec's `commands` table.
"""

from __future__ import annotations

from actors.order.saga import ORDER
from actors.toolkit.interface import actor_interface

OrderActorInterface = actor_interface(ORDER)
