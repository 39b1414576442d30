"""The order saga over real pub/sub: every path ends in exactly one terminal state."""

from __future__ import annotations

import collections
import functools
import json
import random
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from cluster.local import LocalCluster
from tests.integration.support import (
    call,
    consumed,
    deposit,
    envelope,
    ok,
    place,
    publish,
    restock,
    wait_until,
)

TERMINAL = {"shipped", "cancelled"}


def order(client: httpx.Client, order_id: str) -> dict[str, Any]:
    return ok(call(client, "OrderActor", order_id, "Get"))


def settle(client: httpx.Client, order_id: str, *, timeout: float = 60) -> dict[str, Any]:
    """Wait until the order is terminal; returns its view."""
    seen: dict[str, Any] = {}

    def terminal() -> bool:
        seen.update(order(client, order_id))
        return seen["status"] in TERMINAL

    wait_until(terminal, timeout=timeout, what=f"order {order_id} to end")
    return seen


def stock(client: httpx.Client, sku: str) -> dict[str, Any]:
    return ok(call(client, "InventoryActor", sku, "Get"))


def wallet(client: httpx.Client, customer: str) -> dict[str, Any]:
    return ok(call(client, "WalletActor", customer, "Get"))


def released(client: httpx.Client, sku: str) -> bool:
    return bool(stock(client, sku)["reserved"] == 0)


def voided(client: httpx.Client, customer: str) -> bool:
    return bool(wallet(client, customer)["held"] == 0)


def partner(cluster: LocalCluster) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{cluster.app('shipping').app_port}", timeout=10)


def expect_outcome(cluster: LocalCluster, order_id: str, outcome: str) -> None:
    with partner(cluster) as client:
        resp = client.put(f"/partner/orders/{order_id}", json={"outcome": outcome})
        assert resp.status_code in (200, 204), resp.text


def customer_and_skus(
    client: httpx.Client, uid: str, *, funds: int, stock: Sequence[int]
) -> tuple[str, list[str]]:
    """A customer with `funds` deposited, and one SKU per `stock` entry holding that many."""
    customer, skus = f"c-{uid}", [f"s{n}-{uid}" for n in range(len(stock))]
    deposit(client, customer, funds)
    for sku, quantity in zip(skus, stock, strict=True):
        restock(client, sku, quantity)
    return customer, skus


def test_happy_path_ends_shipped_with_payment_captured_and_stock_committed(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    customer, (a, b) = customer_and_skus(gateway_sidecar, uid, funds=10_000, stock=(5, 5))
    order_id = place(gateway_sidecar, customer, [(a, 2, 1000), (b, 1, 500)])
    final = settle(gateway_sidecar, order_id)
    assert final["status"] == "shipped"
    # Capture and commit follow order.shipped over pub/sub: wait for them, then check exactly.
    wait_until(lambda: voided(gateway_sidecar, customer), timeout=30, what="capture")
    wait_until(
        lambda: released(gateway_sidecar, a) and released(gateway_sidecar, b),
        timeout=30,
        what="commit",
    )
    assert wallet(gateway_sidecar, customer) == {
        "customer_id": customer,
        "balance": 7_500,
        "held": 0,
        "available": 7_500,
    }
    assert stock(gateway_sidecar, a) == {"sku": a, "on_hand": 3, "reserved": 0, "available": 3}
    assert stock(gateway_sidecar, b)["on_hand"] == 4


def history(client: httpx.Client, actor_type: str, actor_id: str) -> list[dict[str, Any]]:
    """The actor's event envelopes (its first page: enough for one order's few events)."""
    page = ok(call(client, actor_type, actor_id, "History", {"after": 0, "limit": 100}))
    events: list[dict[str, Any]] = page["events"]
    return events


def test_the_saga_up_to_confirmation_is_one_chain_from_order_placed(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    """The router chains order.placed's Reserves into one OnStockOutcomes, its payment
    request into the Authorize, and the wallet's answer into OnPaymentAuthorized: the
    order records both lines and the payment request in one turn, and each event a
    chained call caused carries its marker (causation "<cause>/<method>"), so no router
    routes it again; the confirmation is caused by the authorization, as when routed."""
    customer, (a, b) = customer_and_skus(gateway_sidecar, uid, funds=10_000, stock=(5, 5))
    order_id = place(gateway_sidecar, customer, [(a, 2, 1000), (b, 1, 500)])
    assert settle(gateway_sidecar, order_id)["status"] == "shipped"

    events = history(gateway_sidecar, "OrderActor", order_id)
    types = [e["type"] for e in events]
    assert types[:5] == [
        "order.placed",
        "order.line_reserved",
        "order.line_reserved",
        "order.payment_requested",
        "order.confirmed",
    ]
    placed_id, requested_id = events[0]["event_id"], events[3]["event_id"]
    assert {e["causation_id"] for e in events[1:4]} == {f"{placed_id}/OnStockOutcomes"}
    for sku in (a, b):
        [reserved] = [
            e
            for e in history(gateway_sidecar, "InventoryActor", sku)
            if e["type"] == "inventory.stock_reserved"
        ]
        assert reserved["causation_id"] == f"{placed_id}/Reserve"
    [authorized] = [
        e
        for e in history(gateway_sidecar, "WalletActor", customer)
        if e["type"] == "wallet.payment_authorized"
    ]
    assert authorized["causation_id"] == f"{requested_id}/Authorize"
    assert events[4]["causation_id"] == authorized["event_id"]


def test_the_partner_ships_from_the_orders_stream_itself_and_its_daprd_subscribes_nothing(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    customer, (sku,) = customer_and_skus(gateway_sidecar, uid, funds=1_000, stock=(1,))
    order_id = place(gateway_sidecar, customer, [(sku, 1, 100)])
    assert settle(gateway_sidecar, order_id)["status"] == "shipped"

    with partner(cluster) as client:
        feed = client.get("/partner/stats").json()["feed"]
    app = cluster.app("shipping")
    metadata = httpx.get(
        f"http://127.0.0.1:{app.http_port}/v1.0/metadata",
        timeout=10,
        headers=cluster.tokens.sidecar_headers,
    ).json()
    assert (feed["mode"], feed["group"], feed["consumer"]) == ("streams", "shipping", "shipping")
    assert feed["acked"] >= 1
    assert metadata.get("subscriptions", []) == []


def test_one_line_out_of_stock_cancels_and_releases_the_other_reservations(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    customer, (a, b) = customer_and_skus(gateway_sidecar, uid, funds=10_000, stock=(5, 1))
    order_id = place(gateway_sidecar, customer, [(a, 2, 100), (b, 3, 100)])
    final = settle(gateway_sidecar, order_id)
    assert final["status"] == "cancelled"
    assert b in final["cancel_reason"]
    wait_until(lambda: stock(gateway_sidecar, a)["reserved"] == 0, timeout=30, what="release")
    assert stock(gateway_sidecar, a)["on_hand"] == 5
    assert stock(gateway_sidecar, b) == {"sku": b, "on_hand": 1, "reserved": 0, "available": 1}
    assert wallet(gateway_sidecar, customer)["held"] == 0


def test_insufficient_funds_cancels_and_releases_the_stock(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    customer, (sku,) = customer_and_skus(gateway_sidecar, uid, funds=100, stock=(5,))
    final = settle(gateway_sidecar, place(gateway_sidecar, customer, [(sku, 1, 500)]))
    assert final["status"] == "cancelled"
    assert "payment declined" in final["cancel_reason"]
    wait_until(lambda: stock(gateway_sidecar, sku)["reserved"] == 0, timeout=30, what="release")
    assert wallet(gateway_sidecar, customer)["balance"] == 100


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("silent", "deadline passed while shipping"), ("fail", "shipment failed")],
    ids=["silent partner: the deadline cancels", "shipment.failed cancels"],
)
def test_an_order_the_partner_does_not_ship_is_cancelled_with_release_and_void(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str, outcome: str, reason: str
) -> None:
    customer, (sku,) = customer_and_skus(gateway_sidecar, uid, funds=1_000, stock=(5,))
    order_id = f"ord-{outcome}-{uid}"
    expect_outcome(cluster, order_id, outcome)
    body = {"customer_id": customer, "lines": [{"sku": sku, "quantity": 2, "unit_price": 100}]}
    ok(call(gateway_sidecar, "OrderActor", order_id, "Place", body))
    final = settle(gateway_sidecar, order_id, timeout=60)
    assert final["status"] == "cancelled"
    assert reason in final["cancel_reason"]
    wait_until(lambda: wallet(gateway_sidecar, customer)["held"] == 0, timeout=30, what="void")
    wait_until(lambda: stock(gateway_sidecar, sku)["reserved"] == 0, timeout=30, what="release")
    assert wallet(gateway_sidecar, customer)["balance"] == 1_000
    assert stock(gateway_sidecar, sku)["on_hand"] == 5
    if outcome == "silent":  # the sweep that cancelled it counted it on its host
        assert deadline_cancels(cluster) >= 1


def deadline_cancels(cluster: LocalCluster) -> float:
    """orderflow_deadline_checks_total{result="cancelled"} over the actor hosts."""
    total = 0.0
    for app in cluster.config.apps():
        if app.name.startswith("actor-host"):
            text = httpx.get(f"http://127.0.0.1:{app.app_port}/metrics", timeout=10).text
            total += sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('orderflow_deadline_checks_total{result="cancelled"}')
            )
    return total


def test_the_customer_can_cancel_before_confirmation(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    customer, (sku,) = customer_and_skus(gateway_sidecar, uid, funds=10_000, stock=(50,))
    for _ in range(5):  # a cancel racing the saga may arrive after confirmation: try again
        order_id = place(gateway_sidecar, customer, [(sku, 1, 100)])
        answer = call(gateway_sidecar, "OrderActor", order_id, "Cancel", {"reason": "oops"})
        if answer["ok"]:
            break
        assert answer["error"]["code"] == "order.with_shipping"
    assert settle(gateway_sidecar, order_id)["cancel_reason"] == "oops"
    wait_until(lambda: stock(gateway_sidecar, sku)["reserved"] == 0, timeout=30, what="release")
    wait_until(lambda: wallet(gateway_sidecar, customer)["held"] == 0, timeout=30, what="void")


def test_fifty_concurrent_orders_for_k_units_confirm_exactly_k_and_never_oversell(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    sku, k = f"hot-{uid}", 20
    restock(gateway_sidecar, sku, k)
    customers = [f"c{n}-{uid}" for n in range(50)]
    for customer in customers:
        deposit(gateway_sidecar, customer, 1_000)
    with ThreadPoolExecutor(16) as pool:
        orders = list(pool.map(lambda c: place(gateway_sidecar, c, [(sku, 1, 100)]), customers))
        finals = list(pool.map(lambda o: settle(gateway_sidecar, o, timeout=90), orders))
    shipped = [f for f in finals if f["status"] == "shipped"]
    assert len(shipped) == k
    assert all("stock rejected" in f["cancel_reason"] for f in finals if f not in shipped)
    wait_until(functools.partial(released, gateway_sidecar, sku), timeout=30, what="commit")
    assert stock(gateway_sidecar, sku) == {"sku": sku, "on_hand": 0, "reserved": 0, "available": 0}


def test_a_shipment_dispatched_twice_ships_once_and_captures_once(
    cluster: LocalCluster,
    gateway_sidecar: httpx.Client,
    sidecar_of: Callable[[str], httpx.Client],
    uid: str,
) -> None:
    customer, (sku,) = customer_and_skus(gateway_sidecar, uid, funds=1_000, stock=(5,))
    order_id = f"ord-twice-{uid}"
    expect_outcome(cluster, order_id, "silent")  # we play the partner here
    body = {"customer_id": customer, "lines": [{"sku": sku, "quantity": 1, "unit_price": 300}]}
    ok(call(gateway_sidecar, "OrderActor", order_id, "Place", body))
    wait_until(
        lambda: order(gateway_sidecar, order_id)["status"] == "confirmed",
        timeout=30,
        what="confirmation",
    )
    event = envelope("shipment.dispatched", {"order_id": order_id, "shipment_id": f"shp-{uid}"})
    for _ in range(2):
        publish(  # through shipping's daprd: `shipments` is the partner's topic
            sidecar_of("shipping"),
            "shipments",
            event,
            event_id=event["event_id"],
            event_type=event["type"],
        )
    assert settle(gateway_sidecar, order_id)["status"] == "shipped"
    wait_until(lambda: wallet(gateway_sidecar, customer)["held"] == 0, timeout=30, what="capture")
    wait_until(lambda: stock(gateway_sidecar, sku)["reserved"] == 0, timeout=30, what="commit")
    assert wallet(gateway_sidecar, customer)["balance"] == 700
    assert stock(gateway_sidecar, sku)["on_hand"] == 4


def test_inbound_deposits_and_restocks_published_twice_apply_once(
    gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str
) -> None:
    customer, sku = f"c-{uid}", f"s-{uid}"
    events = [
        ("deposits", envelope("wallet.funds_deposited", {"customer_id": customer, "amount": 700})),
        ("restocks", envelope("inventory.stock_received", {"sku": sku, "quantity": 9})),
    ]
    for topic, event in events * 2:
        publish(gateway_sidecar, topic, event, event_id=event["event_id"], event_type=event["type"])
    wait_until(
        lambda: wallet(gateway_sidecar, customer)["balance"] == 700, timeout=30, what="deposit"
    )
    wait_until(lambda: stock(gateway_sidecar, sku)["on_hand"] == 9, timeout=30, what="restock")
    wait_until(
        lambda: consumed(redis_client, "deposits") and consumed(redis_client, "restocks"),
        timeout=30,
        what="every delivery to be handled and acknowledged",
    )
    for actor, key in (("WalletActor", customer), ("InventoryActor", sku)):
        history = ok(call(gateway_sidecar, actor, key, "History", {}))
        assert len(history["events"]) == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"customer_id": "c1", "lines": []}',
        b'{"customer_id": "c1", "lines": [{"sku": "a", "quantity": -1, "unit_price": 1}]}',
        b'{"customer_id": "c1", "lines": [{"sku": "a", "quantity": "1", "unit_price": 1}]}',
        b'{"customer_id": "c 1", "lines": [{"sku": "a", "quantity": 1, "unit_price": 1}]}',
        b'{"customer_id": "c1", "lines": [{"sku": "a/b", "quantity": 1, "unit_price": 1}]}',
        b'{"customer_id": "c1", "lines": [{"sku": "a", "quantity": 1, "unit_price": 10000001}]}',
        b'{"customer_id": "", "lines": [{"sku": "a", "quantity": 1, "unit_price": 1}]}',
        b'{"customer_id": "'
        + b"c" * 65
        + b'", "lines": [{"sku": "a", "quantity": 1, "unit_price": 1}]}',
        json.dumps(
            {
                "customer_id": "c1",
                "lines": [{"sku": f"s{n}", "quantity": 1, "unit_price": 1} for n in range(51)],
            }
        ).encode(),
        b'{"customer_id": "c1", "lines": [{"sku": "a", "quantity": 1, "unit_price": 1}], "pad": "'
        + b"x" * 70_000
        + b'"}',
    ],
    ids=lambda p: p[:40].decode(errors="replace"),
)
def test_bad_input_through_the_raw_actor_api_is_refused_and_changes_nothing(
    gateway_sidecar: httpx.Client, uid: str, payload: bytes
) -> None:
    order_id = f"ord-bad-{uuid.uuid4().hex[:8]}"
    resp = gateway_sidecar.post(f"/v1.0/actors/OrderActor/{order_id}/method/Place", content=payload)
    assert resp.status_code == 200
    assert resp.json()["ok"] is False
    assert resp.json()["error"]["code"] == "request.invalid"
    assert call(gateway_sidecar, "OrderActor", order_id, "Get")["error"]["code"] == (
        "order.not_found"
    )


@pytest.mark.slow
def test_after_hundreds_of_random_concurrent_orders_stock_and_money_are_conserved(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    rng = random.Random(uid)
    skus = [f"k{n}-{uid}" for n in range(6)]
    customers = [f"w{n}-{uid}" for n in range(12)]
    stocked = {sku: rng.randint(5, 40) for sku in skus}
    funds = {customer: rng.randint(500, 5_000) for customer in customers}
    for sku, quantity in stocked.items():
        restock(gateway_sidecar, sku, quantity)
    for customer, amount in funds.items():
        deposit(gateway_sidecar, customer, amount)
    with partner(cluster) as client:
        client.put("/partner/settings", json={"delay_ms": 20, "failure_rate": 0.2})
    try:
        plans = []
        for _ in range(240):
            lines = [(s, rng.randint(1, 3), rng.randint(10, 200)) for s in rng.sample(skus, 2)]
            plans.append((rng.choice(customers), lines, rng.random() < 0.1))

        def run(plan: tuple[str, list[tuple[str, int, int]], bool]) -> str:
            customer, lines, cancel = plan
            order_id = place(gateway_sidecar, customer, lines)
            if cancel:
                call(gateway_sidecar, "OrderActor", order_id, "Cancel", {})
            return order_id

        with ThreadPoolExecutor(16) as pool:
            orders = list(pool.map(run, plans))
            finals = list(pool.map(lambda o: settle(gateway_sidecar, o, timeout=120), orders))
    finally:
        with partner(cluster) as client:
            client.put("/partner/settings", json={"delay_ms": 50, "failure_rate": 0.0})
    shipped = [f for f in finals if f["status"] == "shipped"]
    for sku in skus:
        sold = sum(line["quantity"] for f in shipped for line in f["lines"] if line["sku"] == sku)
        wait_until(functools.partial(released, gateway_sidecar, sku), timeout=60, what=sku)
        assert stock(gateway_sidecar, sku)["on_hand"] == stocked[sku] - sold
    for customer in customers:
        paid = sum(f["total"] for f in shipped if f["customer_id"] == customer)
        wait_until(functools.partial(voided, gateway_sidecar, customer), timeout=60, what=customer)
        assert wallet(gateway_sidecar, customer)["balance"] == funds[customer] - paid
    reasons = collections.Counter(
        (f["cancel_reason"] or "").split(":")[0] for f in finals if f not in shipped
    )
    print(f"\n{len(finals)} orders: {len(shipped)} shipped; cancelled: {dict(reasons)}")
