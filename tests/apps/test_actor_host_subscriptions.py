"""The actor host's Dapr subscriptions: rule-filtered on our own topics, whole elsewhere."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from actors import catalog
from actors.reactions import SPECS, build_router
from apps.actor_host.subscriptions import subscription_routes


async def _subscriptions() -> dict[str, dict[str, Any]]:
    app = FastAPI()
    app.include_router(
        subscription_routes(build_router(), own_topics=[spec.topic for spec in SPECS])
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        resp = await client.get("/dapr/subscribe")
    assert resp.status_code == 200
    return {s["topic"]: s for s in resp.json()}


async def test_on_our_own_topics_daprd_delivers_only_the_types_a_reaction_wants() -> None:
    subs = await _subscriptions()

    orders = subs[catalog.ORDERS]["routes"]["rules"]
    assert orders == [
        {
            "match": 'event.type in ["order.cancelled", "order.late_payment_voided", '
            '"order.late_reservation_released", "order.payment_requested", '
            '"order.placed", "order.shipped"]',
            "path": "/events/orders",
        }
    ]
    assert "default" not in subs[catalog.ORDERS]["routes"]  # the rest: acknowledged by daprd
    inventory = subs[catalog.INVENTORY]["routes"]["rules"][0]["match"]
    assert inventory == 'event.type in ["inventory.stock_rejected", "inventory.stock_reserved"]'
    wallet = subs[catalog.WALLET]["routes"]["rules"][0]["match"]
    assert wallet == 'event.type in ["wallet.payment_authorized", "wallet.payment_declined"]'


async def test_other_services_topics_come_whole_so_an_unknown_type_is_dead_lettered() -> None:
    subs = await _subscriptions()

    for topic in (catalog.RESTOCKS, catalog.DEPOSITS, catalog.SHIPMENTS):
        assert subs[topic] == {"pubsubname": "pubsub", "topic": topic, "route": f"/events/{topic}"}
    assert set(subs) == {
        catalog.ORDERS,
        catalog.INVENTORY,
        catalog.WALLET,
        catalog.RESTOCKS,
        catalog.DEPOSITS,
        catalog.SHIPMENTS,
    }
