"""Bad input never reaches an actor: every refusal is a problem+json naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from actors.order.model import MAX_LINES, MAX_QUANTITY, MAX_UNIT_PRICE

KEY = {"Idempotency-Key": "key-1"}
LINE = {"sku": "tea-green", "quantity": 1, "unit_price": 100}


def order_with(**line: Any) -> dict[str, Any]:
    return {"customer_id": "cust-1", "lines": [{**LINE, **line}]}


def lines(count: int) -> list[dict[str, Any]]:
    return [{**LINE, "sku": f"sku-{n}"} for n in range(count)]


def assert_invalid(resp, *fields: str) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = resp.json()
    assert problem["code"] == "request.invalid"
    assert problem["type"] == "https://orderflow.dev/problems/request.invalid"
    assert problem["title"] == "Unprocessable Entity"
    assert {e["field"] for e in problem["errors"]} >= set(fields)
    return problem


# --- bodies ----------------------------------------------------------------------------------


async def test_a_body_that_is_not_json_is_a_400_problem_saying_so(client, sidecar):
    resp = await client.post(
        "/orders",
        content=b'{"customer_id": "cust-1", "lines": [',
        headers={**KEY, "Content-Type": "application/json"},
    )

    assert resp.status_code == 400
    assert resp.json()["code"] == "request.invalid_json"
    assert "not valid JSON" in resp.json()["detail"]
    assert sidecar.calls() == []


async def test_a_json_body_sent_as_text_plain_is_refused_with_a_hint(client, sidecar):
    resp = await client.post(
        "/orders", content=b'{"customer_id": "c"}', headers={**KEY, "Content-Type": "text/plain"}
    )

    problem = assert_invalid(resp)
    assert "Content-Type: application/json" in problem["errors"][0]["message"]
    assert sidecar.calls() == []


@pytest.mark.parametrize("body", [[], "order", 42, None])
async def test_a_body_that_is_not_an_object_is_a_422_problem(client, body):
    resp = await client.post("/orders", json=body, headers=KEY)

    assert_invalid(resp)


async def test_a_missing_field_and_an_unknown_field_are_both_named(client):
    resp = await client.post("/orders", json={"customer_id": "cust-1", "line": [LINE]}, headers=KEY)

    problem = assert_invalid(resp, "lines", "line")
    assert "body.lines" in problem["detail"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"quantity": "2"}, "quantity"),
        ({"quantity": 2.0}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"unit_price": "4.50"}, "unit_price"),
        ({"unit_price": 4.5}, "unit_price"),
        ({"sku": 12}, "sku"),
        ({"sku": ["a"]}, "sku"),
    ],
)
async def test_wrong_types_in_a_line_are_422_problems(client, sidecar, line, field):
    resp = await client.post("/orders", json=order_with(**line), headers=KEY)

    assert_invalid(resp, f"lines.0.{field}")
    assert sidecar.calls() == []


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": MAX_QUANTITY + 1}, "quantity"),
        ({"quantity": 10**30}, "quantity"),
        ({"unit_price": 0}, "unit_price"),
        ({"unit_price": -450}, "unit_price"),
        ({"unit_price": MAX_UNIT_PRICE + 1}, "unit_price"),
    ],
)
async def test_quantities_and_prices_outside_their_range_are_422_problems(client, line, field):
    resp = await client.post("/orders", json=order_with(**line), headers=KEY)

    assert_invalid(resp, f"lines.0.{field}")


async def test_the_largest_quantity_and_price_are_accepted(client):
    body = order_with(quantity=MAX_QUANTITY, unit_price=MAX_UNIT_PRICE)

    resp = await client.post("/orders", json=body, headers=KEY)

    assert resp.status_code == 202
    assert resp.json()["total"] == MAX_QUANTITY * MAX_UNIT_PRICE


async def test_an_order_of_max_lines_is_accepted_and_one_more_is_refused(client, sidecar):
    full = await client.post(
        "/orders", json={"customer_id": "cust-1", "lines": lines(MAX_LINES)}, headers=KEY
    )
    over = await client.post(
        "/orders",
        json={"customer_id": "cust-1", "lines": lines(MAX_LINES + 1)},
        headers={"Idempotency-Key": "key-2"},
    )

    assert full.status_code == 202
    assert_invalid(over, "lines")
    assert len(sidecar.calls()) == 1


async def test_an_order_without_lines_is_refused(client):
    resp = await client.post("/orders", json={"customer_id": "cust-1", "lines": []}, headers=KEY)

    assert_invalid(resp, "lines")


async def test_one_sku_on_two_lines_is_refused_naming_the_sku(client, sidecar):
    body = {"customer_id": "cust-1", "lines": [LINE, {**LINE, "quantity": 5}]}

    resp = await client.post("/orders", json=body, headers=KEY)

    problem = assert_invalid(resp, "lines")
    assert "tea-green" in problem["errors"][0]["message"]
    assert sidecar.calls() == []


BAD_IDS = ["", "a b", "../x", "x" * 65, "-lead", "ü", "a/b", "a\nb"]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_bad_customer_ids_in_a_body_are_422_problems(client, sidecar, bad):
    resp = await client.post("/orders", json={"customer_id": bad, "lines": [LINE]}, headers=KEY)

    assert_invalid(resp, "customer_id")
    assert sidecar.calls() == []


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_bad_skus_in_a_body_are_422_problems(client, bad):
    resp = await client.post("/orders", json=order_with(sku=bad), headers=KEY)

    assert_invalid(resp, "lines.0.sku")


async def test_the_longest_ids_are_accepted(client):
    body = {"customer_id": "c" * 64, "lines": [{**LINE, "sku": "s" * 64}]}

    resp = await client.post("/orders", json=body, headers=KEY)

    assert resp.status_code == 202


# --- ids in paths ----------------------------------------------------------------------------

PATH_IDS = ["a%20b", "x" * 65, ".hidden", "..", "-lead", "%C3%BC", "a%0Ab"]


@pytest.mark.parametrize("bad", PATH_IDS)
@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("GET", "/orders/{}", None),
        ("POST", "/orders/{}/cancel", None),
        ("GET", "/orders/{}/history", None),
        ("POST", "/inventory/{}/restock", {"quantity": 1}),
        ("GET", "/inventory/{}", None),
        ("GET", "/wallets/{}", None),
        ("POST", "/wallets/{}/deposit", {"amount": 1}),
    ],
)
async def test_a_malformed_id_in_a_path_is_a_422_problem(
    client, sidecar, bad, method, template, body
):
    # `..` goes percent-encoded, as a client would send it, so it is not a dot-segment.
    raw = "%2E%2E" if bad == ".." else bad

    resp = await client.request(method, template.format(raw), json=body)

    assert_invalid(resp)
    assert resp.json()["errors"][0]["location"] == "path"
    assert sidecar.calls() == []


@pytest.mark.parametrize("path", ["/inventory/..%2Fx", "/orders/a%2Fb", "/wallets//deposit"])
async def test_a_slash_inside_an_id_names_no_resource_and_reaches_no_actor(client, sidecar, path):
    resp = await client.get(path)

    assert resp.status_code in (404, 405)
    assert resp.headers["content-type"] == "application/problem+json"
    assert sidecar.calls() == []
