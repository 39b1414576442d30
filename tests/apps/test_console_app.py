"""The ops console in-process: real actors behind the in-memory sidecar, a real Redis,
the cluster's HTTP endpoints answered by an httpx.MockTransport."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from actors.reactions import build_router
from actors.toolkit.client import ActorClient
from actors.toolkit.testing import InMemorySidecar
from apps.console.cluster import configuration
from apps.console.main import Settings, create_app
from apps.console.targets import AppTarget, Targets
from readmodels.keys import Layout
from readmodels.rows import OrderRow, iso, to_hash

HOSTS = (
    AppTarget(
        name="actor-host-1",
        app_id="actor-host",
        app_port=8101,
        http_port=3501,
        metrics_port=9091,
        actor_types=("OrderActor", "InventoryActor"),
    ),
    AppTarget(
        name="actor-host-2", app_id="actor-host", app_port=8102, http_port=3502, metrics_port=9092
    ),
)
TARGETS = Targets(apps=HOSTS)
LINE = {"sku": "tea", "quantity": 2, "unit_price": 150}


def cluster_answers(request: httpx.Request) -> httpx.Response:
    """A cluster whose two actor hosts are up; Prometheus and Zipkin are not running."""
    url = str(request.url)
    if ":9480" in url or ":9411" in url:
        raise httpx.ConnectError("refused", request=request)
    if url.endswith("/v1.0/metadata"):
        return httpx.Response(
            200,
            json={
                "runtimeVersion": "1.18.2",
                "enabledFeatures": ["ActorStateTTL"],
                "actorRuntime": {
                    "activeActors": [{"type": "OrderActor", "count": 3}],
                    "placement": "placement: connected",
                },
                "components": [{"name": "pubsub", "type": "pubsub.redis", "version": "v1"}],
                "subscriptions": [{"pubsubname": "pubsub", "topic": "orders"}],
            },
        )
    if url.endswith("/placement/state"):
        hosts = [{"name": "127.0.0.1:50012", "appId": "actor-host", "entities": ["OrderActor"]}]
        return httpx.Response(200, json={"hostList": hosts, "tableVersion": 7})
    if url.endswith("/metrics"):  # the apps 3 minutes up, their daprd 2 minutes
        age = 185 if ":81" in url else 125
        return httpx.Response(
            200, text=f"process_start_time_seconds {dt.datetime.now().timestamp() - age}\n"
        )
    return httpx.Response(200, json={"status": "ok"})


@pytest.fixture
def sidecar() -> InMemorySidecar:
    return InMemorySidecar(router=build_router())


def console_client(
    sidecar: InMemorySidecar,
    redis: aioredis.Redis,
    answers: Callable[[httpx.Request], httpx.Response] = cluster_answers,
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    probes = httpx.AsyncClient(transport=httpx.MockTransport(answers))
    settings = Settings(targets=TARGETS, stuck_after_s=30, vendor_dir=None)
    app = create_app(settings, sidecar=sidecar, redis=redis, http=probes)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")
    return client, probes


@pytest.fixture
async def console(
    sidecar: InMemorySidecar, redis: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    client, probes = console_client(sidecar, redis)
    async with probes, client, _lifespan(client):
        yield client


class _lifespan:
    """Runs the app's lifespan around a test (ASGITransport does not)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        transport = client._transport
        assert isinstance(transport, httpx.ASGITransport)
        self._app: Any = transport.app
        self._cm: Any = None

    async def __aenter__(self) -> None:
        self._cm = self._app.router.lifespan_context(self._app)
        await self._cm.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(*exc)


def letter(
    code: str, *, topic: str = "orders", source: str = "ev-1", **extra: Any
) -> dict[str, Any]:
    """A CloudEvent from the dead-letter topic, as the router publishes it."""
    data = {
        "code": code,
        "reason": f"because {code}",
        "topic": topic,
        "target": "InventoryActor/tea/Commit",
        "cloudevent_id": source,
        "cloudevent_type": "order.shipped",
        "event": {"event_id": source, "type": "order.shipped", "payload": {"sku": "tea"}},
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
        **extra,
    }
    return {
        "id": f"dl-{source}-InventoryActor/tea/Commit",
        "type": "orderflow.dead_letter",
        "data": data,
    }


async def deliver(console: httpx.AsyncClient, event: dict[str, Any]) -> str:
    resp = await console.post("/deadletters/inbox", json=event)
    assert resp.status_code == 200
    return str(resp.json()["status"])


# --- cluster -------------------------------------------------------------------------------


async def test_the_cluster_page_lists_every_host_its_actor_types_and_whats_not_running(
    console: httpx.AsyncClient,
) -> None:
    resp = await console.get("/cluster")

    assert resp.status_code == 200
    page = resp.text
    assert "actor-host-1" in page
    assert "actor-host-2" in page
    assert '<span class="actor-type">OrderActor</span> (3)' in page
    assert "1.18.2" in page
    assert "2m 0" in page  # each daprd's uptime
    assert page.count('class="app-uptime">3m 0') == 2  # each actor host app's
    assert "actor-host-1: ActorStateTTL" in page  # the sidecar's enabled features
    assert "names none" in page  # no Configuration file given
    assert "127.0.0.1:50012" in page  # the placement table
    assert "pubsub/orders" in page
    assert "pubsub.redis" in page
    assert page.count("not running") == 2  # Prometheus and Zipkin


async def test_the_cluster_page_shows_who_reads_each_topic_stream_and_what_waits(
    console: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    first = await redis.xadd("orders", {"data": "event 0"})
    for n in (1, 2):
        await redis.xadd("orders", {"data": f"event {n}"})
    await redis.xgroup_create("orders", "projector", id="0")
    await redis.xgroup_create("orders", "actor-host", id="0")
    # the router's feed on one host read two entries and acknowledged the first
    await redis.xreadgroup("actor-host", "actor-host-1", {"orders": ">"}, count=2)
    await redis.xack("orders", "actor-host", first)

    page = (await console.get("/cluster")).text

    router = _row(page, 'data-stream="orders" data-group="actor-host"')
    assert "actor-host-1 <small>(1," in router  # its one unacknowledged entry
    assert '<td class="pending">1</td><td class="lag">1</td>' in router  # one never read
    projector = _row(page, 'data-stream="orders" data-group="projector"')
    assert '<td class="pending">0</td><td class="lag">3</td>' in projector
    assert "<td>3</td>" in projector  # the stream's length
    assert 'data-stream="wallet"' not in page  # no such stream yet


async def test_without_redis_the_cluster_page_says_why_it_shows_no_stream_group(
    sidecar: InMemorySidecar,
) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    gone = aioredis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.5)
    client, probes = console_client(sidecar, gone)
    async with probes, client, _lifespan(client):
        page = (await client.get("/cluster")).text
    await gone.aclose()

    assert "The consumer groups could not be read: Redis did not answer" in page


def _row(page: str, marker: str) -> str:
    start = page.index(marker)
    return page[start : page.index("</tr>", start)]


# --- orders --------------------------------------------------------------------------------


async def test_an_orders_timeline_shows_its_events_in_order_with_status_and_compensation(
    console: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    actors = ActorClient(sidecar)
    await actors.invoke("OrderActor", "ord-1", "Place", {"customer_id": "c-1", "lines": [LINE]})
    await sidecar.settle()  # no stock: rejected, the order is cancelled

    resp = await console.get("/orders/ord-1")

    assert resp.status_code == 200
    page = resp.text
    assert 'id="status" class="status-cancelled"' in page
    placed, cancelled = (
        page.index('data-type="order.placed"'),
        page.index('data-type="order.cancelled"'),
    )
    assert placed < cancelled
    assert 'class="event compensation" data-type="order.cancelled"' in page


async def test_an_unknown_order_is_404_and_a_malformed_id_422(console: httpx.AsyncClient) -> None:
    assert (await console.get("/orders/ord-none")).status_code == 404
    bad = await console.get("/orders/" + "x" * 80)
    assert bad.status_code == 422
    assert "is not an order or customer id" in bad.text


async def test_search_finds_an_order_by_id_or_customer_and_stuck_sagas_say_what_they_wait_for(
    console: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    gen = Layout().generation(None)
    old = iso(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    row = OrderRow(
        order_id="ord-9",
        status="reserving",
        customer_id="c-9",
        created_at=old,
        updated_at=old,
        aggregate_version=1,
        lines=({"sku": "tea", "quantity": 1, "unit_price": 5},),
    )
    await redis.hset(gen.key("order:ord-9"), mapping=dict(to_hash(row)))  # type: ignore[arg-type]
    for index in ("orders:all", "orders:customer:c-9", "orders:status:reserving"):
        await redis.zadd(gen.key(index), {"ord-9": 1.0})

    by_id, by_customer = await console.get("/orders?q=ord-9"), await console.get("/orders?q=c-9")
    bad = await console.get("/orders", params={"q": "no spaces please"})

    assert 'href="/orders/ord-9"' in by_id.text
    assert 'href="/orders/ord-9"' in by_customer.text
    stuck = by_id.text[by_id.text.index('id="stuck"') :]
    assert "reserving: waiting for stock replies (tea)" in stuck
    assert bad.status_code == 422
    assert "is not an order or customer id" in bad.text


# --- dead letters --------------------------------------------------------------------------


async def test_a_redrive_republishes_the_event_on_its_topic_with_the_original_id_and_type(
    console: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    event = letter("inventory.reservation_not_found", source="ev-42")
    assert await deliver(console, event) == "SUCCESS"

    resp = await console.post(f"/api/deadletters/{event['id']}/redrive")

    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True
    [published] = sidecar.published
    assert (published.topic, published.event_id, published.event_type) == (
        "orders",
        "ev-42",
        "order.shipped",
    )
    assert published.data == event["data"]["event"]
    assert (await console.get("/api/deadletters")).json()["letters"] == []
    everything = (await console.get("/api/deadletters?status=all")).json()["letters"]
    assert [(x["status"], x["redrives"]) for x in everything] == [("redriven", 1)]
    again = await console.post(f"/api/deadletters/{event['id']}/redrive")
    assert again.status_code == 409
    assert "redriven already" in again.json()["detail"]


async def test_redrive_by_filter_touches_only_the_matching_letters(
    console: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await deliver(console, letter("inventory.reservation_not_found", source="a"))
    await deliver(console, letter("inventory.reservation_not_found", source="b"))
    await deliver(console, letter("wallet.hold_not_found", source="c"))

    resp = await console.post("/api/deadletters/redrive", params={"code": "wallet.hold_not_found"})

    assert [r["ok"] for r in resp.json()["results"]] == [True]
    assert [p.event_id for p in sidecar.published] == ["c"]
    open_codes = [x["code"] for x in (await console.get("/api/deadletters")).json()["letters"]]
    assert open_codes == ["inventory.reservation_not_found"] * 2


async def test_the_page_redrives_one_letter_and_shows_the_result(
    console: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    event = letter("inventory.reservation_not_found", source="ev-7")
    await deliver(console, event)
    page = (await console.get("/deadletters")).text
    assert "inventory.reservation_not_found" in page
    assert 'class="redrive"' in page

    resp = await console.post(f"/deadletters/{event['id']}/redrive", follow_redirects=True)

    assert "republished to orders as ev-7" in resp.text
    assert 'class="redrive"' not in resp.text  # it left the list of open letters
    assert [p.event_id for p in sidecar.published] == ["ev-7"]


async def test_a_letter_refused_again_after_its_redrive_comes_back_but_a_redelivery_does_not(
    console: httpx.AsyncClient,
) -> None:
    first = letter("inventory.reservation_not_found", source="ev-8")
    await deliver(console, first)
    await console.post(f"/api/deadletters/{first['id']}/redrive")

    await deliver(console, first)  # the broker delivers the old letter again
    assert (await console.get("/api/deadletters")).json()["letters"] == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    await deliver(
        console,
        letter("inventory.reservation_not_found", source="ev-8", recorded_at=later.isoformat()),
    )
    [back] = (await console.get("/api/deadletters")).json()["letters"]
    assert (back["status"], back["redrives"]) == ("open", 1)


async def test_bad_redrive_requests_get_clear_errors(console: httpx.AsyncClient) -> None:
    no_filter = await console.post("/api/deadletters/redrive")
    bad_code = await console.post("/api/deadletters/redrive", params={"code": "no spaces"})
    unknown = await console.post("/api/deadletters/dl-nothing/redrive")
    page = await console.post("/deadletters/redrive", content=b"code=", follow_redirects=True)

    assert no_filter.status_code == 422
    assert "name a code" in no_filter.json()["detail"]
    assert bad_code.status_code == 422
    assert unknown.status_code == 404
    assert "no dead letter" in unknown.json()["detail"]
    assert "name a code and/or a topic" in page.text


async def test_a_letter_without_its_original_id_is_kept_but_not_redriven(
    console: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    event = letter("event.not_json", source="", event="not json at all")
    await deliver(console, event)

    resp = await console.post(f"/api/deadletters/{event['id']}/redrive")

    assert resp.status_code == 409
    assert "original CloudEvent id is unknown" in resp.json()["detail"]
    assert sidecar.published == []


async def test_what_is_no_dead_letter_is_dropped(console: httpx.AsyncClient) -> None:
    assert await deliver(console, {"id": "x", "data": {"no": "code"}}) == "DROP"
    resp = await console.post("/deadletters/inbox", content=b"not json")
    assert resp.json()["status"] == "DROP"


# --- plots ---------------------------------------------------------------------------------


async def test_a_plot_without_prometheus_says_no_data_and_why(console: httpx.AsyncClient) -> None:
    resp = await console.get("/api/plots/throughput")

    assert resp.status_code == 200
    assert "Prometheus is not running" in resp.json()["no_data"]
    assert (await console.get("/api/plots/nothing")).status_code == 404
    page = await console.get("/plots")
    assert 'data-plot="saga_latency"' in page.text
    assert "make console-deps" in page.text


async def test_a_plot_draws_prometheus_samples(
    sidecar: InMemorySidecar, redis: aioredis.Redis
) -> None:
    def prometheus(request: httpx.Request) -> httpx.Response:
        start = float(request.url.params["start"])
        values = [[start + 60, "1.5"], [start + 120, "NaN"]]
        return httpx.Response(
            200, json={"status": "success", "data": {"result": [{"values": values}]}}
        )

    client, probes = console_client(sidecar, redis, prometheus)
    async with probes, client, _lifespan(client):
        body = (await client.get("/api/plots/outbox_backlog?minutes=10")).json()

    assert body["no_data"] == ""
    xs, ys = body["data"]
    assert 1.5 in ys
    assert len(xs) == len(ys)
    assert body["queries"] == ["sum(orderflow_outbox_backlog)"]


def test_the_cluster_page_shows_the_dapr_configuration_file_it_is_given(tmp_path: Path) -> None:
    config = tmp_path / "dapr-config.yaml"
    config.write_text("kind: Configuration\nspec:\n  tracing:\n    samplingRate: '1'\n")

    assert "samplingRate: '1'" in configuration(str(config))
    assert configuration(str(tmp_path / "missing.yaml")) == ""
    assert configuration("") == ""
