"""The gateway's request span: named after the route template, the root of the order's
trace, with the actor's turn under it (the in-memory sidecar, real actors)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind

from actors.toolkit.testing import InMemorySidecar
from tests.spans import PARENT, SAMPLED, TRACE, Recorded, recording

ORDER = {"customer_id": "cust-1", "lines": [{"sku": "tea", "quantity": 1, "unit_price": 100}]}


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    with recording() as r:
        yield r


def server_span_over(recorded: Recorded, route: str, status: int, method: str, *, turn: str) -> Any:
    """The request's server span (named after its route template), checked to parent the
    actor's turn span `turn`."""
    spans = recorded.spans()
    request, turned = spans[f"{method} {route}"], spans[turn]
    assert request.kind is SpanKind.SERVER
    assert dict(request.attributes or {})["http.route"] == route
    assert dict(request.attributes or {})["http.status_code"] == status
    assert request.context is not None
    assert turned.parent is not None
    assert turned.parent.span_id == request.context.span_id
    return request


async def test_a_request_is_one_server_span_named_after_its_route_and_parents_the_turn(
    client: httpx.AsyncClient, recorded: Recorded
) -> None:
    placed = await client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    assert placed.status_code == 202

    request = server_span_over(recorded, "/orders", 202, "POST", turn="OrderActor.Place")
    assert request.parent is None  # the root of the order's trace


async def test_a_templated_route_names_the_span_not_the_path_and_a_callers_trace_is_kept(
    client: httpx.AsyncClient, recorded: Recorded
) -> None:
    read = await client.get("/orders/ord-unknown", headers={"traceparent": SAMPLED})
    assert read.status_code == 404

    request = recorded.spans()["GET /orders/{order_id}"]
    assert request.context is not None
    assert request.parent is not None
    assert request.context.trace_id == int(TRACE, 16)
    assert request.parent.span_id == int(PARENT, 16)


async def test_tracing_off_forwards_the_callers_traceparent_to_the_sidecar(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await client.get("/orders/ord-unknown", headers={"traceparent": SAMPLED})

    [call] = [r for r in sidecar.requests if r.path.endswith("/method/Get")]
    assert call.headers["traceparent"] == SAMPLED


async def test_a_deposit_served_without_fastapis_routing_is_still_one_span_of_its_route(
    client: httpx.AsyncClient, recorded: Recorded
) -> None:
    resp = await client.post(
        "/wallets/cust-1/deposit", json={"amount": 5}, headers={"traceparent": SAMPLED}
    )
    assert resp.status_code == 200

    route = "/wallets/{customer_id}/deposit"
    request = server_span_over(recorded, route, 200, "POST", turn="WalletActor.Deposit")
    assert request.parent is not None
    assert request.parent.span_id == int(PARENT, 16)


async def test_tracing_off_a_deposit_forwards_the_callers_traceparent_to_the_sidecar(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await client.post(
        "/wallets/cust-1/deposit", json={"amount": 5}, headers={"traceparent": SAMPLED}
    )

    [call] = [r for r in sidecar.requests if r.path.endswith("/method/Deposit")]
    assert call.headers["traceparent"] == SAMPLED
