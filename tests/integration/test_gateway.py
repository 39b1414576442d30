"""The public HTTP API on the real cluster: the walkthrough, idempotency, problems."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.support import fund_and_stock, wait_until


def order_body(customer: str, sku: str, quantity: int = 1) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "lines": [{"sku": sku, "quantity": quantity, "unit_price": 250}],
    }


def test_walkthrough_deposit_restock_place_confirm_ship_and_read_history(
    api: httpx.Client, uid: str
) -> None:
    customer, sku = f"cust-{uid}", f"sku-{uid}"
    fund_and_stock(api, customer=customer, amount=5_000, sku=sku, quantity=10)
    placed = api.post(
        "/orders", json=order_body(customer, sku, 2), headers={"Idempotency-Key": uid}
    )
    assert placed.status_code == 202, placed.text
    location = placed.headers["location"]
    final = api.get(location, params={"wait": 30}).json()
    assert final["status"] == "shipped", final
    history = api.get(f"{location}/history").json()
    types = [event["type"] for event in history["events"]]
    assert types[0] == "order.placed"
    assert types[-1] == "order.shipped"
    assert "order.confirmed" in types
    # Capture and commit follow order.shipped over pub/sub, so both settle a moment later.
    strong = {"consistency": "strong"}  # the default read is the (eventual) read model
    wait_until(
        lambda: api.get(f"/wallets/{customer}", params=strong).json()["held"] == 0,
        timeout=30,
        what="payment capture",
    )
    assert api.get(f"/wallets/{customer}", params=strong).json()["balance"] == 4_500
    wait_until(
        lambda: api.get(f"/inventory/{sku}").json()["reserved"] == 0, timeout=30, what="commit"
    )
    assert api.get(f"/inventory/{sku}").json()["on_hand"] == 8


def test_the_same_idempotency_key_twice_places_one_order_and_a_new_body_conflicts(
    api: httpx.Client, uid: str
) -> None:
    customer, sku = f"cust-{uid}", f"sku-{uid}"
    fund_and_stock(api, customer=customer, amount=5_000, sku=sku, quantity=10)
    headers = {"Idempotency-Key": f"key-{uid}"}
    first = api.post("/orders", json=order_body(customer, sku), headers=headers)
    second = api.post("/orders", json=order_body(customer, sku), headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.headers["location"] == second.headers["location"]
    other = api.post("/orders", json=order_body(customer, sku, 3), headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert api.get(first.headers["location"], params={"wait": 30}).json()["status"] == "shipped"
    wait_until(
        lambda: api.get(f"/inventory/{sku}").json()["reserved"] == 0, timeout=30, what="commit"
    )
    assert api.get(f"/inventory/{sku}").json()["on_hand"] == 9  # one order shipped, not two


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/orders", b"{not json", 400),
        (
            "/orders",
            b'{"customer_id": "c1", "lines": [{"sku": "a", "quantity": 0, "unit_price": 1}]}',
            422,
        ),
        (
            "/orders",
            b'{"customer_id": "c 1", "lines": [{"sku": "a", "quantity": 1, "unit_price": 1}]}',
            422,
        ),
        ("/inventory/a%20b/restock", b'{"quantity": 1}', 422),
        ("/wallets/w1/deposit", b'{"amount": -5}', 422),
        ("/wallets/w1/deposit", b'{"amount": "5"}', 422),
    ],
)
def test_bad_input_through_the_gateway_is_a_problem_and_no_state_changes(
    api: httpx.Client, path: str, body: bytes, status: int
) -> None:
    resp = api.post(
        path,
        content=body,
        headers={"content-type": "application/json", "Idempotency-Key": "bad-input"},
    )
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == status
    assert "Traceback" not in resp.text
    assert api.get("/wallets/w1", params={"consistency": "strong"}).json()["balance"] == 0


def test_an_unknown_order_is_a_404_problem(api: httpx.Client, uid: str) -> None:
    resp = api.get(f"/orders/ord-missing-{uid}")
    assert resp.status_code == 404
    assert resp.json()["code"] == "order.not_found"


def test_an_oversized_body_is_refused_with_413(api: httpx.Client) -> None:
    resp = api.post("/orders", content=b"x" * 70_000, headers={"Idempotency-Key": "big"})
    assert resp.status_code == 413
