"""Inventory and wallets through the gateway: restock, deposit, read, history."""

from __future__ import annotations

import pytest

from actors.inventory.model import MAX_QUANTITY
from actors.wallet.model import MAX_DEPOSIT

# --- inventory -------------------------------------------------------------------------------


async def test_restocking_answers_the_stock_view(client, sidecar):
    resp = await client.post("/inventory/tea-green/restock", json={"quantity": 40})

    assert resp.status_code == 200
    assert resp.json() == {"sku": "tea-green", "on_hand": 40, "reserved": 0, "available": 40}
    message_id = sidecar.calls("Restock")[0].payload["message_id"]
    assert len(message_id) == 32


async def test_reading_stock_answers_what_was_restocked(client):
    await client.post("/inventory/tea-green/restock", json={"quantity": 5})
    await client.post("/inventory/tea-green/restock", json={"quantity": 7})

    resp = await client.get("/inventory/tea-green")

    assert resp.status_code == 200
    assert resp.json()["on_hand"] == 12


async def test_a_restock_retried_with_its_key_adds_the_stock_once(client, sidecar):
    headers = {"Idempotency-Key": "delivery-17"}

    first = await client.post("/inventory/tea/restock", json={"quantity": 5}, headers=headers)
    again = await client.post("/inventory/tea/restock", json={"quantity": 5}, headers=headers)

    assert again.json() == first.json() == {**first.json(), "on_hand": 5}
    assert sidecar.calls("Restock")[1].payload["message_id"] == "delivery-17"
    assert (await client.get("/inventory/tea")).json()["on_hand"] == 5


async def test_a_malformed_key_on_a_restock_is_a_400_problem(client, sidecar):
    resp = await client.post(
        "/inventory/tea/restock", json={"quantity": 5}, headers={"Idempotency-Key": "a b"}
    )

    assert resp.status_code == 400
    assert resp.json()["code"] == "request.idempotency_key"
    assert sidecar.calls() == []


OUT_OF_LIMITS = [
    *(
        ("/inventory/tea/restock", "quantity", v)
        for v in [0, -3, MAX_QUANTITY + 1, 2.5, "5", None, True]
    ),
    *(
        ("/wallets/cust-1/deposit", "amount", v)
        for v in [0, -1, MAX_DEPOSIT + 1, 10.5, "100", None]
    ),
]


@pytest.mark.parametrize(("path", "field", "value"), OUT_OF_LIMITS)
async def test_a_restock_quantity_or_deposit_amount_must_be_a_positive_integer_within_its_limit(
    client, sidecar, path, field, value
):
    resp = await client.post(path, json={field: value})

    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == field
    assert sidecar.calls() == []


async def test_the_largest_restock_is_accepted(client):
    resp = await client.post("/inventory/tea/restock", json={"quantity": MAX_QUANTITY})

    assert resp.status_code == 200


async def test_stock_history_lists_restocks_oldest_first(client):
    for quantity in (1, 2, 3):
        await client.post("/inventory/tea/restock", json={"quantity": quantity})

    first = await client.get("/inventory/tea/history", params={"limit": 2})
    rest = await client.get("/inventory/tea/history", params={"after": 2})

    assert [e["payload"]["quantity"] for e in first.json()["events"]] == [1, 2]
    assert first.headers["Link"] == '</inventory/tea/history?after=2&limit=2>; rel="next"'
    assert [e["aggregate_version"] for e in rest.json()["events"]] == [3]
    assert rest.json()["next_after"] is None


# --- wallets ---------------------------------------------------------------------------------


async def test_depositing_answers_the_wallet_view(client):
    resp = await client.post("/wallets/cust-1/deposit", json={"amount": 2500})

    assert resp.status_code == 200
    assert resp.json() == {"customer_id": "cust-1", "balance": 2500, "held": 0, "available": 2500}


async def test_reading_a_wallet_answers_its_balance(client):
    await client.post("/wallets/cust-1/deposit", json={"amount": 100})

    resp = await client.get("/wallets/cust-1", params={"consistency": "strong"})

    assert resp.status_code == 200
    assert resp.json()["balance"] == 100
    assert (resp.json()["consistency"], resp.json()["freshness"]) == ("strong", None)


async def test_a_deposit_retried_with_its_key_credits_once(client):
    headers = {"Idempotency-Key": "payin:2025-01-01.7"}

    await client.post("/wallets/cust-1/deposit", json={"amount": 100}, headers=headers)
    await client.post("/wallets/cust-1/deposit", json={"amount": 100}, headers=headers)

    strong = await client.get("/wallets/cust-1", params={"consistency": "strong"})
    assert strong.json()["balance"] == 100


async def test_wallet_history_lists_its_credits(client):
    await client.post("/wallets/cust-1/deposit", json={"amount": 100})

    resp = await client.get("/wallets/cust-1/history")

    assert resp.status_code == 200
    assert [e["type"] for e in resp.json()["events"]] == ["wallet.funds_credited"]
    assert resp.json()["events"][0]["aggregate_id"] == "cust-1"
    assert "Link" not in resp.headers
