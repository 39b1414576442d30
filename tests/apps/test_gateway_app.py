"""The gateway as a process: health, settings, the lifespan's sidecar client, OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from actors.toolkit.client import ActorClient
from apps.gateway.main import Settings, create_app

API_PREFIXES = ("/orders", "/inventory", "/wallets")


async def test_the_health_route_answers_ok(client):
    resp = await client.get("/healthz/app")

    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_settings_read_the_sidecar_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("DAPR_HTTP_PORT", "3777")

    assert Settings.from_env().dapr_http_port == 3777


async def test_the_lifespan_builds_one_sidecar_client_and_closes_it(sidecar):
    async with sidecar.serve() as port:
        app = create_app(Settings(dapr_http_port=port))

        async with app.router.lifespan_context(app):
            assert isinstance(app.state.actors, ActorClient)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                resp = await client.get("/wallets/cust-1", params={"consistency": "strong"})
                await client.get("/wallets/cust-2", params={"consistency": "strong"})

        assert resp.status_code == 200
        assert [call.actor_id for call in sidecar.calls("Get")] == ["cust-1", "cust-2"]
        assert len({request.peer for request in sidecar.requests}) == 1  # one pooled client
        assert await sidecar.connections_closed()
    assert not hasattr(app.state, "actors")


# --- OpenAPI ---------------------------------------------------------------------------------


@pytest.fixture
async def openapi(client) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    spec: dict[str, Any] = resp.json()
    return spec


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        if path.startswith(API_PREFIXES)
        for method, op in item.items()
    ]


def test_the_api_has_the_documented_routes(openapi):
    routes = {(method.upper(), path) for method, path, _ in operations(openapi)}

    assert routes == {
        ("POST", "/orders"),
        ("GET", "/orders"),
        ("GET", "/orders/{order_id}"),
        ("POST", "/orders/{order_id}/cancel"),
        ("GET", "/orders/{order_id}/history"),
        ("GET", "/inventory"),
        ("POST", "/inventory/{sku}/restock"),
        ("GET", "/inventory/{sku}"),
        ("GET", "/inventory/{sku}/history"),
        ("POST", "/wallets/{customer_id}/deposit"),
        ("GET", "/wallets/{customer_id}"),
        ("GET", "/wallets/{customer_id}/history"),
    }


def test_every_request_body_has_examples_in_the_openapi_document(openapi):
    bodies = [
        (path, op["requestBody"]) for _, path, op in operations(openapi) if "requestBody" in op
    ]

    assert len(bodies) == 4
    for path, body in bodies:
        examples = body["content"]["application/json"]["examples"]
        assert examples, path
        assert all("value" in example for example in examples.values()), path


def test_request_models_carry_their_examples_too(openapi):
    schemas = openapi["components"]["schemas"]

    for name in ("PlaceOrderRequest", "CancelOrderRequest", "RestockRequest", "DepositRequest"):
        assert schemas[name]["examples"], name


def test_every_route_declares_its_problem_answers_as_problem_json(openapi):
    for method, path, op in operations(openapi):
        declared = {code for code in op["responses"] if code.startswith(("4", "5"))}
        assert {"422", "500", "503"} <= declared, (method, path)
        for code in declared:
            content = op["responses"][code]["content"]
            assert list(content) == ["application/problem+json"], (method, path, code)
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
    assert "Problem" in openapi["components"]["schemas"]
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


def test_placing_an_order_declares_the_required_idempotency_key(openapi):
    op = openapi["paths"]["/orders"]["post"]

    (header,) = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header"
    assert header["required"] is True
    assert {"202", "400", "409", "413"} <= set(op["responses"])


async def test_the_interactive_docs_are_served(client):
    resp = await client.get("/docs")

    assert resp.status_code == 200
    assert "/openapi.json" in resp.text
