"""Names every process shares: the pub/sub component, the topics, the actor types.

    PUBSUB                       the Dapr pub/sub component (components/pubsub.yaml)
    topic        written by                  read by
    orders       OrderActor                  router, projector, shipping
    inventory    InventoryActor              router, projector
    wallet       WalletActor                 router, projector
    restocks     the warehouse (inbound)     router
    deposits     payments (inbound)          router
    shipments    shipping (inbound)          router
    deadletter   the router                  operators (what can never apply, with why)
    actor type       id                      its AggregateSpec (methods, events, errors)
    InventoryActor   SKU                     actors/inventory/model.py INVENTORY
    WalletActor      customer id             actors/wallet/model.py WALLET
    OrderActor       order id                actors/order/saga.py ORDER
    DeadlineSweeper  shard "0".."3"          actors/order/deadlines.py (sweeps the orders'
                                             due index, calls OrderActor.CheckDeadline)

Constants only: anything may import this module, and it imports nothing of ours.
"""

from __future__ import annotations

from typing import Final

PUBSUB: Final = "pubsub"

ORDERS: Final = "orders"
INVENTORY: Final = "inventory"
WALLET: Final = "wallet"
RESTOCKS: Final = "restocks"
DEPOSITS: Final = "deposits"
SHIPMENTS: Final = "shipments"
DEAD_LETTER_TYPE: Final = "orderflow.dead_letter"  # the CloudEvent type of a dead letter
DEAD_LETTERS: Final = "deadletter"

INVENTORY_ACTOR: Final = "InventoryActor"
WALLET_ACTOR: Final = "WalletActor"
ORDER_ACTOR: Final = "OrderActor"
BEACON_ACTOR: Final = "BeaconActor"
DEADLINE_SWEEPER: Final = "DeadlineSweeper"

# Which topic each event-sourced actor type publishes its events to.
TOPIC_OF: Final = {ORDER_ACTOR: ORDERS, INVENTORY_ACTOR: INVENTORY, WALLET_ACTOR: WALLET}
