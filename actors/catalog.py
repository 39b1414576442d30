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
    projector-redelivery  the projector's daprd  the projector (what daprd could not deliver)
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
# the projector's subscriptions' dead-letter topic (ORDERFLOW_PROJECTOR_FEED=dapr):
# what its daprd could not deliver, read again (apps/projector/events.py)
PROJECTOR_REDELIVERY: Final = "projector-redelivery"

INVENTORY_ACTOR: Final = "InventoryActor"
WALLET_ACTOR: Final = "WalletActor"
ORDER_ACTOR: Final = "OrderActor"
BEACON_ACTOR: Final = "BeaconActor"
DEADLINE_SWEEPER: Final = "DeadlineSweeper"

# Which topic each event-sourced actor type publishes its events to.
TOPIC_OF: Final = {ORDER_ACTOR: ORDERS, INVENTORY_ACTOR: INVENTORY, WALLET_ACTOR: WALLET}

# --- who may use each topic through Dapr (the pub/sub component's topic scopes) ---------
# The pub/sub component (components/pubsub.yaml, the chart's copy) grants these and
# nothing else: every topic is protected, so an app id missing here may neither publish
# to nor subscribe to any of them through its daprd, and a topic missing here does not
# exist for Dapr. The actor hosts' commits, the router's, the projector's and shipping's
# stream feeds write and read the streams in Redis themselves, beneath Dapr: these scopes
# bind only what goes through a daprd (README, "Design notes", "Security").
ACTOR_HOST_APP: Final = "actor-host"
GATEWAY_APP: Final = "gateway"
PROJECTOR_APP: Final = "projector"
SHIPPING_APP: Final = "shipping"
CONSOLE_APP: Final = "console"
# the topics the router takes events from, each of them a dead letter's possible topic
ROUTED_TOPICS: Final = (ORDERS, INVENTORY, WALLET, RESTOCKS, DEPOSITS, SHIPMENTS)
TOPICS: Final = (*ROUTED_TOPICS, DEAD_LETTERS, PROJECTOR_REDELIVERY)
PUBLISHES: Final = {
    # ORDERFLOW_PUBLISH=sidecar's commits, and the router's dead letters
    ACTOR_HOST_APP: (ORDERS, INVENTORY, WALLET, DEAD_LETTERS),
    # the local cluster's door for other services' events (README, "Events")
    GATEWAY_APP: (RESTOCKS, DEPOSITS),
    # daprd's own dead-letter publish of what it could not deliver
    PROJECTOR_APP: (PROJECTOR_REDELIVERY,),
    SHIPPING_APP: (SHIPMENTS,),
    # a dead letter redriven to the topic it came from
    CONSOLE_APP: ROUTED_TOPICS,
}
SUBSCRIBES: Final = {
    ACTOR_HOST_APP: ROUTED_TOPICS,  # ORDERFLOW_ROUTER_FEED=dapr
    GATEWAY_APP: (),
    PROJECTOR_APP: (ORDERS, INVENTORY, WALLET, PROJECTOR_REDELIVERY),  # ..._FEED=dapr
    SHIPPING_APP: (ORDERS,),  # ORDERFLOW_SHIPPING_FEED=dapr
    CONSOLE_APP: (DEAD_LETTERS,),
}


def topic_scopes(grants: dict[str, tuple[str, ...]]) -> str:
    """`grants` as the pub/sub component's publishingScopes / subscriptionScopes value:
    `app=topic,topic;app=` (an empty list: no topic)."""
    return ";".join(f"{app}={','.join(topics)}" for app, topics in grants.items())
