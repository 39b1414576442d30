"""GET /metrics on every app: what moves when a request, a dead letter or an event comes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from actors.toolkit.client import ActorClient
from actors.toolkit.testing import InMemorySidecar
from apps.actor_host import main as actor_host
from apps.projector import main as projector
from apps.shipping import main as shipping
from tests.apps.conftest import client_for, running
from tests.apps.histories import cloud_event, order_events, shipped
from tests.metrics_text import Samples, parse, value


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(resp.text)


# --- gateway: RED per route template ------------------------------------------------------------


async def test_gateway_counts_requests_by_route_template_never_the_raw_path(
    actors: ActorClient,
) -> None:
    async with client_for(actors) as gateway:
        assert (await gateway.get("/orders/ord-missing-1")).status_code == 404
        assert (await gateway.get("/orders/ord-missing-2")).status_code == 404
        assert (await gateway.get("/no/such/path")).status_code == 404
        found = await scrape(gateway)

    requests = "orderflow_http_requests_total"
    assert value(found, requests, method="GET", route="/orders/{order_id}", status="404") == 2
    assert value(found, requests, method="GET", route="unmatched", status="404") == 1
    count = "orderflow_http_request_duration_seconds_count"
    assert value(found, count, method="GET", route="/orders/{order_id}") == 2
    labels = {v for (_, pairs) in found for _, v in pairs}
    assert not labels & {"ord-missing-1", "/orders/ord-missing-1", "/no/such/path"}


async def test_gateway_counts_a_server_error_and_an_oversized_body(
    sidecar: InMemorySidecar, actors: ActorClient
) -> None:
    sidecar.fail(times=None)  # every actor call fails: 503
    async with client_for(actors) as gateway:
        assert (await gateway.get("/orders/ord-1")).status_code == 503
        big = b"{" + b" " * 2_000_000 + b"}"
        headers = {"Idempotency-Key": "k-1", "Content-Type": "application/json"}
        assert (await gateway.post("/orders", content=big, headers=headers)).status_code == 413
        found = await scrape(gateway)

    requests = "orderflow_http_requests_total"
    assert value(found, requests, method="GET", route="/orders/{order_id}", status="503") == 1
    # refused before routing: no route template, the status says why
    assert value(found, requests, method="POST", route="unmatched", status="413") == 1


async def test_two_gateways_count_apart() -> None:
    first, second = ActorClient(InMemorySidecar()), ActorClient(InMemorySidecar())
    async with client_for(first) as one, client_for(second) as other:
        await one.get("/orders/ord-1")
        found = await scrape(other)
    assert not any(name == "orderflow_http_requests_total" for name, _ in found)


# --- actor host: dead letters, and the actors' own -------------------------------------------


@pytest.fixture
async def actor_host_client() -> AsyncIterator[httpx.AsyncClient]:
    sidecar = InMemorySidecar()
    async with sidecar.serve() as port:
        app = actor_host.create_app(actor_host.Settings(dapr_http_port=port))
        async with running(app) as client:
            yield client


async def test_actor_host_counts_dead_letters_by_code(
    actor_host_client: httpx.AsyncClient,
) -> None:
    for _ in range(2):
        resp = await actor_host_client.post("/events/orders", content=b"not json")
        assert resp.json() == {"status": "SUCCESS"}

    found = await scrape(actor_host_client)
    assert value(found, "orderflow_dead_letters_total", code="event.not_json") == 2
    assert ("orderflow_orders_placed_total", frozenset()) in found  # the actors' families
    stats = (await actor_host_client.get("/actors/stats")).json()
    assert (stats["commits"], stats["fence_conflicts"]) == (0, 0)


# --- projector: lag, sagas in progress ----------------------------------------------------


@pytest.fixture
async def projector_client(redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = projector.create_app(projector.Settings(stuck_after=dt.timedelta(minutes=1)), redis=redis)
    async with running(app) as client:
        yield client


async def test_projector_observes_projection_lag_per_event_applied(
    projector_client: httpx.AsyncClient,
) -> None:
    events = shipped("ord-lag", "cust-1")
    for event in events:
        resp = await projector_client.post("/events/orders", json=cloud_event(event))
        assert resp.json() == {"status": "SUCCESS"}

    found = await scrape(projector_client)
    applied = value(found, "orderflow_projection_lag_seconds_count")
    assert applied == len(events)
    assert value(found, "orderflow_projection_lag_seconds_sum") > 0


async def test_projector_shows_orders_in_progress_and_those_stuck(
    projector_client: httpx.AsyncClient,
) -> None:
    now = dt.datetime.now(dt.UTC)
    for order_id, placed in (("ord-old", now - dt.timedelta(minutes=10)), ("ord-new", now)):
        for event in order_events(order_id, "cust-1", start=placed):
            await projector_client.post("/events/orders", json=cloud_event(event))
    for event in shipped("ord-done", "cust-1", start=now - dt.timedelta(minutes=10)):
        await projector_client.post("/events/orders", json=cloud_event(event))

    found = await scrape(projector_client)
    assert value(found, "orderflow_orders_in_progress", status="reserving") == 2
    assert value(found, "orderflow_orders_stuck", status="reserving") == 1  # placed 10 min ago
    assert value(found, "orderflow_orders_stuck", status="confirmed") == 0
    age = value(found, "orderflow_orders_oldest_in_progress_age_seconds", status="reserving")
    assert 590 < age < 700


async def test_shipping_serves_its_process_metrics() -> None:
    app = shipping.create_app(shipping.Settings(), sidecar=InMemorySidecar())
    async with running(app) as client:
        found = await scrape(client)
    assert value(found, "process_resident_memory_bytes") > 0
