"""The shipping app over ASGI: subscription, answers through the in-memory sidecar, control API.
(Its stream feed, on a real Redis: test_shipping_feed.py.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.sidecar import SidecarUnavailableError
from actors.toolkit.testing import InMemorySidecar
from apps.shipping.main import Settings, create_app
from apps.shipping.partner import PartnerSettings, answer_event_id_for, shipment_id_for
from tests.apps.conftest import running

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


SETTINGS = Settings(partner=PartnerSettings(delay_ms=0, failure_rate=0.0), seed="tests")


@pytest.fixture
def sidecar() -> InMemorySidecar:
    return InMemorySidecar()


@pytest.fixture
async def client(sidecar: InMemorySidecar) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS, sidecar=sidecar)
    async with running(app, base_url="http://shipping") as c:
        yield c


def envelope(
    *, event_id: str = "evt-1", order_id: str = "ord-1", type_: str = "order.confirmed"
) -> dict[str, Any]:
    return EventEnvelope(
        event_id=event_id,
        type=type_,
        schema_version=1,
        aggregate_type="Order",
        aggregate_id=order_id,
        aggregate_version=5,
        occurred_at=dt.datetime.now(dt.UTC),
        correlation_id=f"corr-{order_id}",
        causation_id="evt-authorized",
        payload={"customer_id": "cust-1", "lines": [{"sku": "SKU-1", "quantity": 1}]},
    ).model_dump(mode="json")


async def deliver(
    client: httpx.AsyncClient, data: Any, *, headers: dict[str, str] | None = None
) -> str:
    """POST a CloudEvent as daprd does; the subscriber's status (always HTTP 200)."""
    cloud_event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "actor-host",
        "type": "com.dapr.event.sent",
        "topic": "orders",
        "pubsubname": "pubsub",
        "datacontenttype": "application/json",
        "data": data,
    }
    resp = await client.post(
        "/events/orders",
        content=json.dumps(cloud_event),
        headers={"content-type": "application/cloudevents+json", **(headers or {})},
    )
    assert resp.status_code == 200
    status: str = resp.json()["status"]
    return status


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    """The partner's counters, and its feed's (`feed`)."""
    resp = await client.get("/partner/stats")
    counts: dict[str, Any] = resp.json()
    return counts


async def test_with_the_dapr_feed_the_subscription_asks_daprd_for_confirmed_orders_only(
    sidecar: InMemorySidecar,
) -> None:
    app = create_app(dataclasses.replace(SETTINGS, feed="dapr"), sidecar=sidecar)
    async with running(app, base_url="http://shipping") as client:
        resp = await client.get("/dapr/subscribe")

    rule = {"match": 'event.type in ["order.confirmed"]', "path": "/events/orders"}
    assert resp.json() == [{"pubsubname": "pubsub", "topic": "orders", "routes": {"rules": [rule]}}]


async def test_with_the_streams_feed_it_asks_daprd_for_no_subscription(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/dapr/subscribe")).json() == []


async def test_a_confirmed_order_is_dispatched_through_the_sidecar_publish_api(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    assert await deliver(client, envelope()) == "SUCCESS"

    (request,) = sidecar.requests
    event = json.loads(request.content)
    assert request.method == "POST"
    assert request.path == "/v1.0/publish/pubsub/shipments"
    assert dict(request.params) == {
        "metadata.cloudevent.id": answer_event_id_for("evt-1"),
        "metadata.cloudevent.type": "shipment.dispatched",
    }
    assert request.headers["content-type"] == "application/json"
    assert event["event_id"] == answer_event_id_for("evt-1")
    assert (event["aggregate_type"], event["aggregate_version"]) == ("Shipment", 1)
    assert event["payload"] == {"order_id": "ord-1", "shipment_id": shipment_id_for("evt-1")}
    assert (event["correlation_id"], event["causation_id"]) == ("corr-ord-1", "evt-1")
    assert (await stats(client))["dispatched"] == 1


async def test_the_trace_context_of_the_delivery_is_forwarded(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await deliver(client, envelope(), headers={"traceparent": TRACEPARENT})

    (request,) = sidecar.requests
    assert request.headers["traceparent"] == TRACEPARENT
    assert json.loads(request.content)["traceparent"] == TRACEPARENT


async def test_a_redelivered_confirmed_order_is_answered_with_the_same_ids(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await deliver(client, envelope(event_id="evt-7"))
    await deliver(client, envelope(event_id="evt-7"))

    first, second = sidecar.events("shipments")
    assert first["event_id"] == second["event_id"]
    assert first["aggregate_id"] == second["aggregate_id"] == first["payload"]["shipment_id"]


async def test_with_failure_rate_one_every_order_fails_with_the_carrier_reason(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    resp = await client.put("/partner/settings", json={"delay_ms": 0, "failure_rate": 1.0})
    assert resp.status_code == 200

    assert await deliver(client, envelope()) == "SUCCESS"

    (event,) = sidecar.events("shipments")
    assert event["type"] == "shipment.failed"
    assert event["payload"] == {"order_id": "ord-1", "reason": "carrier rejected the parcel"}
    assert (await stats(client))["failed"] == 1


async def test_other_order_events_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    assert await deliver(client, envelope(type_="order.placed")) == "SUCCESS"

    assert sidecar.requests == []
    assert (await stats(client))["ignored"] == 1


@pytest.mark.parametrize(
    "data",
    [
        None,
        "not json",
        {"event_id": "evt-1"},
        {**envelope(), "type": "Not A Type"},
        {**envelope(), "payload": "not an object"},
        envelope(order_id="bad id!"),
    ],
    ids=["no-data", "string", "partial", "bad-type", "bad-payload", "bad-order-id"],
)
async def test_an_invalid_envelope_is_dropped_with_a_warning(
    client: httpx.AsyncClient, sidecar: InMemorySidecar, caplog: pytest.LogCaptureFixture, data: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="orderflow.shipping"):
        assert await deliver(client, data) == "DROP"

    assert sidecar.requests == []
    assert "dropped an event from topic orders" in caplog.text
    assert (await stats(client))["dropped"] == 1


async def test_a_body_that_is_not_json_is_dropped(client: httpx.AsyncClient) -> None:
    resp = await client.post("/events/orders", content=b"\xff{")

    assert resp.json() == {"status": "DROP"}


@pytest.mark.parametrize(
    "failure", [503, SidecarUnavailableError("refused")], ids=["sidecar-error", "unreachable"]
)
async def test_a_publish_the_sidecar_does_not_confirm_asks_for_redelivery(
    client: httpx.AsyncClient, sidecar: InMemorySidecar, failure: int | Exception
) -> None:
    if isinstance(failure, int):
        sidecar.fail(status=failure)
    else:
        sidecar.fail(error=failure)

    assert await deliver(client, envelope()) == "RETRY"
    assert await deliver(client, envelope()) == "SUCCESS"

    counts = await stats(client)
    assert (counts["retried"], counts["dispatched"]) == (1, 1)


async def test_a_failing_override_answers_with_its_reason(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    override = {"outcome": "fail", "reason": "address unknown", "delay_ms": 0}
    resp = await client.put("/partner/orders/ord-9", json=override)
    assert resp.json() == override

    await deliver(client, envelope(order_id="ord-9"))

    (event,) = sidecar.events("shipments")
    assert event["payload"] == {"order_id": "ord-9", "reason": "address unknown"}


async def test_a_silent_override_acknowledges_without_answering(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await client.put("/partner/orders/ord-9", json={"outcome": "silent"})

    assert await deliver(client, envelope(order_id="ord-9")) == "SUCCESS"

    assert sidecar.requests == []
    assert (await stats(client))["silent"] == 1


async def test_a_deleted_override_no_longer_applies(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await client.put("/partner/orders/ord-9", json={"outcome": "silent"})
    assert (await client.get("/partner/orders/ord-9")).json()["outcome"] == "silent"

    assert (await client.delete("/partner/orders/ord-9")).status_code == 204
    assert (await client.get("/partner/orders/ord-9")).status_code == 404
    await deliver(client, envelope(order_id="ord-9"))

    assert [e["type"] for e in sidecar.events("shipments")] == ["shipment.dispatched"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/partner/orders/bad%20id", {"outcome": "fail"}),
        ("/partner/orders/ord-1", {"outcome": "dispatch", "reason": "only with fail"}),
        ("/partner/orders/ord-1", {"outcome": "fail", "delay_ms": 60_001}),
        ("/partner/settings", {"delay_ms": 0, "failure_rate": 1.01}),
        ("/partner/settings", {"delay_ms": 60_001, "failure_rate": 0}),
    ],
)
async def test_invalid_control_requests_are_refused(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    assert (await client.put(path, json=body)).status_code == 422


async def test_settings_can_be_read_back(client: httpx.AsyncClient) -> None:
    await client.put("/partner/settings", json={"delay_ms": 250, "failure_rate": 0.5})

    assert (await client.get("/partner/settings")).json() == {"delay_ms": 250, "failure_rate": 0.5}


async def test_the_delay_passes_before_the_answer_is_published(
    client: httpx.AsyncClient, sidecar: InMemorySidecar
) -> None:
    await client.put("/partner/orders/ord-1", json={"outcome": "dispatch", "delay_ms": 100})
    started = time.monotonic()

    assert await deliver(client, envelope()) == "SUCCESS"

    assert time.monotonic() - started >= 0.1
    assert len(sidecar.requests) == 1


async def test_the_app_reports_its_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz/app")).json() == {"status": "ok"}


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DAPR_HTTP_PORT": "3600",
            "ORDERFLOW_SHIPPING_DELAY_MS": "10",
            "ORDERFLOW_SHIPPING_FAILURE_RATE": "0.3",
            "ORDERFLOW_SHIPPING_SEED": "42",
            "ORDERFLOW_SHIPPING_FEED": "Dapr",
            "ORDERFLOW_REDIS_HOST": "10.0.0.7:6379",
            "APP_ID": "partner",
            "ORDERFLOW_APP_NAME": "partner-2",
        }
    )

    assert settings == Settings(
        dapr_http_port=3600,
        partner=PartnerSettings(delay_ms=10, failure_rate=0.3),
        seed="42",
        feed="dapr",
        redis_host="10.0.0.7:6379",
        group="partner",
        consumer="partner-2",
    )
    assert Settings.from_env({}) == Settings()
    with pytest.raises(ValueError, match="ORDERFLOW_SHIPPING_FEED must be one of streams, dapr"):
        Settings.from_env({"ORDERFLOW_SHIPPING_FEED": "kafka"})


async def test_settings_are_read_when_the_app_starts_not_when_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERFLOW_SHIPPING_FAILURE_RATE", "2")
    app = create_app()

    with pytest.raises(ValueError, match="ORDERFLOW_SHIPPING_FAILURE_RATE"):
        async with app.router.lifespan_context(app):
            pass


async def test_without_a_client_the_app_opens_and_closes_its_own_sidecar_client(
    sidecar: InMemorySidecar,
) -> None:
    async with sidecar.serve() as port:
        # the dapr feed: no feed (and no Redis client) without a sidecar client to replace
        app = create_app(dataclasses.replace(SETTINGS, dapr_http_port=port, feed="dapr"))

        async with running(app, base_url="http://shipping") as c:
            assert await deliver(c, envelope()) == "SUCCESS"

        assert [e["type"] for e in sidecar.events("shipments")] == ["shipment.dispatched"]
        assert await sidecar.connections_closed()  # with the lifespan
