"""Queries through the gateway, served from read models in a real Redis (in-memory actors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from actors.order import saga as order_saga
from actors.toolkit.client import ActorClient
from actors.toolkit.envelope import EventEnvelope, utcnow
from actors.toolkit.redis_connection import redis_client
from apps.gateway.main import Settings, create_app
from apps.projector.store import ProjectionStore
from readmodels.queries import ReadModels
from tests.apps.conftest import BASE_URL
from tests.apps.histories import T0, funded, order_events, restocked, shipped

CUSTOMER = "cust-1"


@pytest.fixture
def store(redis: aioredis.Redis) -> ProjectionStore:
    return ProjectionStore(redis)


@pytest.fixture
async def api(redis: aioredis.Redis, actors: ActorClient) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), actors=actors, readmodels=ReadModels(redis, max_wait_s=0.3))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


async def project(store: ProjectionStore, *histories: list[EventEnvelope]) -> None:
    for history in histories:
        for envelope in history:
            await store.project_live(envelope, applied_at=utcnow())


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def walk(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(path, params=query)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


# --- GET /orders -----------------------------------------------------------------------------


async def test_a_customers_orders_are_listed_newest_first_with_freshness(api, store):
    await project(
        store,
        shipped("ord-old", CUSTOMER, start=at(0)),
        order_events("ord-new", CUSTOMER, start=at(5)),
        order_events("ord-other", "cust-2", start=at(9)),
    )

    resp = await api.get("/orders", params={"customer": CUSTOMER})

    assert resp.status_code == 200
    body = resp.json()
    assert [o["order_id"] for o in body["items"]] == ["ord-new", "ord-old"]
    assert body["items"][1]["status"] == "shipped"
    assert body["items"][1]["aggregate_version"] == 5
    assert body["items"][1]["lines"] == [{"sku": "sku-a", "quantity": 1, "unit_price": 500}]
    assert body["next_cursor"] is None
    freshness = body["freshness"]
    assert freshness["last_event_at"] is not None
    assert freshness["lag_ms"] >= 0
    assert freshness["projection_lag_ms"] >= 0


async def test_orders_can_be_listed_by_status_alone_or_with_the_customer(api, store):
    await project(
        store,
        shipped("ord-1", CUSTOMER, start=at(0)),
        shipped("ord-2", "cust-2", start=at(1)),
        order_events("ord-3", CUSTOMER, order_saga.Cancel(reason="no"), start=at(2)),
    )

    shipped_ids = [o["order_id"] for o in await walk(api, "/orders", status="shipped")]
    mine = await walk(api, "/orders", status="shipped", customer=CUSTOMER)
    everything = await walk(api, "/orders")

    assert shipped_ids == ["ord-2", "ord-1"]
    assert [o["order_id"] for o in mine] == ["ord-1"]
    assert [o["order_id"] for o in everything] == ["ord-3", "ord-2", "ord-1"]
    assert everything[0]["cancel_reason"] == "no"


async def test_paging_returns_every_order_once_while_orders_are_placed(api, store):
    await project(store, *(order_events(f"ord-{n:02}", CUSTOMER, start=at(n)) for n in range(9)))
    seen: list[str] = []
    cursor = None
    for n in range(20):
        query = {"customer": CUSTOMER, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/orders", params=query)).json()
        seen += [o["order_id"] for o in page["items"]]
        cursor = page["next_cursor"]
        # between pages: a newer order and one placed at the very same instant as another
        await project(store, order_events(f"ord-new-{n}", CUSTOMER, start=at(30 + n)))
        await project(store, order_events(f"ord-04-twin-{n}", CUSTOMER, start=at(4)))
        if cursor is None:
            break

    originals = [f"ord-{n:02}" for n in range(9)]
    assert len(seen) == len(set(seen))
    assert [o for o in seen if o in originals] == sorted(originals, reverse=True)


async def test_orders_placed_in_the_same_millisecond_page_by_id(api, store):
    await project(store, *(order_events(f"ord-{c}", CUSTOMER, start=at(0)) for c in "abcde"))

    first = (await api.get("/orders", params={"limit": 2})).json()
    everything = [o["order_id"] for o in await walk(api, "/orders", limit=2)]

    assert [o["order_id"] for o in first["items"]] == ["ord-e", "ord-d"]
    assert everything == ["ord-e", "ord-d", "ord-c", "ord-b", "ord-a"]


@pytest.mark.parametrize(
    "cursor", ["not-base64!", "W10", "bm9wZQ", "WzEsIDJd", "W05hTiwgIngiXQ", "eyJhIjoxfQ"]
)
async def test_a_cursor_the_gateway_did_not_hand_out_is_a_400(api, cursor):
    resp = await api.get("/orders", params={"cursor": cursor})

    assert resp.status_code == 400
    assert resp.json()["code"] == "request.invalid_cursor"


@pytest.mark.parametrize(
    "query", [{"status": "lost"}, {"customer": "a b"}, {"limit": 0}, {"limit": 201}]
)
async def test_bad_list_parameters_are_a_422(api, query):
    resp = await api.get("/orders", params=query)

    assert resp.status_code == 422
    assert resp.json()["code"] == "request.invalid"


# --- GET /inventory ----------------------------------------------------------------------------


async def test_low_stock_lists_skus_below_the_threshold_lowest_first(api, store):
    await project(
        store,
        restocked("sku-plenty", 100),
        restocked("sku-low", 5, reserve=3),
        restocked("sku-none", 4, reserve=4),
    )

    low = (await api.get("/inventory", params={"below": 10})).json()
    every = await walk(api, "/inventory", limit=1)

    assert [(s["sku"], s["available"]) for s in low["items"]] == [("sku-none", 0), ("sku-low", 2)]
    assert low["items"][1] | {"updated_at": None} == {
        "sku": "sku-low",
        "on_hand": 5,
        "reserved": 3,
        "available": 2,
        "aggregate_version": 2,
        "updated_at": None,
    }
    assert [s["sku"] for s in every] == ["sku-none", "sku-low", "sku-plenty"]
    assert low["freshness"]["last_event_at"] is not None


# --- GET /wallets/{id} -------------------------------------------------------------------------


async def test_a_wallet_is_read_from_the_read_model_by_default(api, store, sidecar):
    await project(store, funded(CUSTOMER, 2_000, hold=500))

    resp = await api.get(f"/wallets/{CUSTOMER}")

    assert resp.status_code == 200
    body = resp.json()
    assert {k: body[k] for k in ("balance", "held", "available", "aggregate_version")} == {
        "balance": 2_000,
        "held": 500,
        "available": 1_500,
        "aggregate_version": 2,
    }
    assert body["consistency"] == "eventual"
    assert body["freshness"]["last_event_at"] is not None
    assert sidecar.calls() == []  # queries never reach an actor


async def test_a_wallet_the_read_model_never_saw_is_empty(api):
    body = (await api.get("/wallets/cust-unknown")).json()

    assert (body["balance"], body["held"], body["aggregate_version"]) == (0, 0, 0)
    assert body["freshness"] == {"last_event_at": None, "lag_ms": None, "projection_lag_ms": None}


async def test_a_strong_wallet_read_asks_the_actor(api, store):
    await api.post(f"/wallets/{CUSTOMER}/deposit", json={"amount": 700})

    eventual = (await api.get(f"/wallets/{CUSTOMER}")).json()
    strong = (await api.get(f"/wallets/{CUSTOMER}", params={"consistency": "strong"})).json()

    assert eventual["balance"] == 0  # no projector in this test: the read model lags forever
    assert (strong["balance"], strong["aggregate_version"]) == (700, 1)
    assert (strong["consistency"], strong["freshness"]) == ("strong", None)


# --- GET /orders/{id}?min_version -------------------------------------------------------------


async def test_read_your_writes_answers_once_the_read_model_has_the_version(api, store):
    await project(store, shipped("ord-1", CUSTOMER))

    body = (await api.get("/orders/ord-1", params={"min_version": 5})).json()

    assert (body["status"], body["aggregate_version"], body["stale"]) == ("shipped", 5, False)
    assert body["consistency"] == "eventual"
    assert body["freshness"]["last_event_at"] is not None


async def test_read_your_writes_says_stale_when_the_version_does_not_arrive(api, store):
    await project(store, shipped("ord-1", CUSTOMER)[:2])

    body = (await api.get("/orders/ord-1", params={"min_version": 5})).json()

    assert (body["status"], body["aggregate_version"], body["stale"]) == ("reserving", 2, True)


async def test_read_your_writes_asks_the_actor_for_an_order_the_read_model_never_saw(api):
    placed = await api.post(
        "/orders",
        json={"customer_id": CUSTOMER, "lines": [{"sku": "s", "quantity": 1, "unit_price": 9}]},
        headers={"Idempotency-Key": "k-1"},
    )

    version = placed.headers["aggregate-version"]
    body = (await api.get(placed.headers["location"], params={"min_version": version})).json()

    assert (body["consistency"], body["stale"], body["aggregate_version"]) == ("strong", False, 1)
    assert body["status"] == "reserving"


async def test_the_default_order_read_still_asks_the_actor(api, store):
    await project(store, shipped("ord-1", CUSTOMER))

    resp = await api.get("/orders/ord-1")

    assert resp.status_code == 404  # no actor ever saw it
    assert resp.json()["code"] == "order.not_found"


async def test_wait_and_min_version_do_not_combine(api):
    resp = await api.get("/orders/ord-1", params={"min_version": 1, "wait": 1})

    assert resp.status_code == 422


# --- unavailable read models --------------------------------------------------------------------


async def test_queries_answer_503_when_redis_is_unavailable(actors):
    unreachable = redis_client("127.0.0.1:1")
    app = create_app(Settings(), actors=actors, readmodels=ReadModels(unreachable))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        answers = [await c.get(path) for path in ("/orders", "/inventory", "/wallets/c1")]
    await unreachable.aclose()

    assert [a.status_code for a in answers] == [503, 503, 503]
    assert {a.json()["code"] for a in answers} == {"runtime.unavailable"}
    assert all(a.headers["Retry-After"] == "1" for a in answers)


async def test_queries_without_read_models_answer_503(actors):
    app = create_app(Settings(), actors=actors)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        resp = await c.get("/orders")

    assert resp.status_code == 503
