"""Errors as problem+json: domain errors by family, 413, 503 with Retry-After, a bare 500."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from actors.inventory.model import ReservationNotFoundError, StockLimitExceededError
from actors.order.model import InvalidTransitionError
from actors.toolkit.client import ActorClient
from actors.toolkit.envelope import failed
from actors.toolkit.errors import DomainError, InvalidCommandError, error_from_dict
from actors.toolkit.sidecar import SidecarUnavailableError
from actors.toolkit.testing import InMemorySidecar
from apps.gateway.main import Settings, create_app
from apps.gateway.middleware import MAX_BODY_BYTES
from tests.apps.conftest import BASE_URL, client_for

KEY = {"Idempotency-Key": "key-1"}
ORDER = {"customer_id": "cust-1", "lines": [{"sku": "tea", "quantity": 1, "unit_price": 100}]}


def refusing(error: DomainError) -> ActorClient:
    """Every actor call answers `error` in its result envelope, as an actor refusing it does;
    the real client re-raises it from there."""
    sidecar = InMemorySidecar()
    sidecar.answer(200, failed(error), times=None)
    return ActorClient(sidecar)


def raising(error: Exception) -> ActorClient:
    """Every actor call raises `error` out of the client."""
    sidecar = InMemorySidecar()
    sidecar.fail(times=None, error=error)
    return ActorClient(sidecar)


# --- domain errors ---------------------------------------------------------------------------


RESTOCK = "/inventory/tea/restock"
CANCEL = "/orders/ord-1/cancel"  # an order's own error codes come back from an order actor


@pytest.mark.parametrize(
    ("error", "status", "path"),
    [
        (ReservationNotFoundError("no such reservation", context={"sku": "tea"}), 404, RESTOCK),
        (InvalidTransitionError("too early", context={"status": "new"}), 409, CANCEL),
        (StockLimitExceededError("too much", context={"on_hand": 10}), 422, RESTOCK),
        (InvalidCommandError("quantity: Input should be a valid integer"), 422, RESTOCK),
        (DomainError("something the gateway has no family for"), 400, RESTOCK),
    ],
)
async def test_each_domain_error_family_has_its_status_and_keeps_its_code(error, status, path):
    async with client_for(refusing(error)) as client:
        resp = await client.post(path, json={"quantity": 1} if path == RESTOCK else {})

    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["code"] == error.code
    assert problem["type"] == f"https://orderflow.dev/problems/{error.code}"
    assert problem["detail"] == error.detail
    assert problem.get("context", {}) == error.context
    assert problem["instance"] == path


async def test_an_error_code_unknown_to_the_gateway_is_kept_as_sent():
    error = error_from_dict({"code": "shipping.lost_in_space", "detail": "gone"})

    async with client_for(refusing(error)) as client:
        resp = await client.get("/orders/ord-1")

    assert resp.status_code == 400
    assert resp.json()["code"] == "shipping.lost_in_space"


# --- runtime unavailable ---------------------------------------------------------------------


def unreachable(sidecar: InMemorySidecar) -> None:
    refused = SidecarUnavailableError("POST /v1.0/actors: connection refused to 127.0.0.1:3500")
    sidecar.fail(error=refused)


def answer_500(sidecar: InMemorySidecar) -> None:
    sidecar.fail(status=500)  # daprd's body: {"errorCode": "ERR_ACTOR_INVOKE_METHOD", ...}


@pytest.mark.parametrize("fault", [unreachable, answer_500], ids=["unreachable", "http-500"])
async def test_an_unavailable_runtime_is_a_503_with_retry_after(fault, sidecar, caplog):
    fault(sidecar)
    async with client_for(ActorClient(sidecar)) as client:
        resp = await client.post("/orders", json=ORDER, headers=KEY)

    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert resp.json()["code"] == "runtime.unavailable"
    assert "3500" not in resp.text
    assert "ERR_ACTOR" not in resp.text
    assert any("runtime unavailable" in r.getMessage() for r in caplog.records)


async def test_a_gateway_whose_lifespan_never_ran_answers_503_not_500():
    app = create_app(Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        resp = await c.get("/wallets/cust-1")

    assert resp.status_code == 503
    assert resp.json()["code"] == "runtime.unavailable"


# --- unexpected errors -----------------------------------------------------------------------


def answering(result: dict[str, Any]) -> ActorClient:
    """Every actor call answers `result` in an ok envelope."""
    sidecar = InMemorySidecar()
    body = json.dumps({"ok": True, "result": result}).encode()
    sidecar.answer(200, body, times=None)
    return ActorClient(sidecar)


@pytest.mark.parametrize(
    "actors",
    [
        raising(RuntimeError("password=hunter2 in /srv/secret.py")),
        answering({"order_id": "ord-1", "status": "teleported", "password": "hunter2"}),
    ],
    ids=["exception", "unreadable-view"],
)
async def test_an_unexpected_error_is_a_bare_500_and_is_logged(actors, caplog):
    # Starlette re-raises after answering so the server logs it too; a server keeps going.
    async with client_for(actors, raise_app_exceptions=False) as client:
        resp = await client.get("/orders/ord-1")

    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json() == {
        "type": "https://orderflow.dev/problems/internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred; it has been logged",
        "code": "internal",
        "instance": "/orders/ord-1",
    }
    for leak in ("hunter2", "Traceback", "RuntimeError", "ValidationError", "teleported"):
        assert leak not in resp.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert logged
    assert "GET /orders/ord-1" in logged[0].getMessage()


# --- routing ---------------------------------------------------------------------------------


async def test_an_unknown_route_is_a_404_problem(client):
    resp = await client.get("/carts/1")

    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "request.not_found"


async def test_a_wrong_method_is_a_405_problem_with_allow(client):
    resp = await client.delete("/orders/ord-1")

    assert resp.status_code == 405
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["Allow"] == "GET"
    assert resp.json()["code"] == "request.method_not_allowed"


# --- body size -------------------------------------------------------------------------------

TOO_LARGE = MAX_BODY_BYTES + 1024  # 65 KiB


def padded_order(size: int) -> bytes:
    body = json.dumps(ORDER).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def chunks(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_too_large(resp: httpx.Response) -> None:
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "request.too_large"
    assert resp.json()["context"] == {"max_bytes": MAX_BODY_BYTES}


async def test_a_body_declared_over_64_kib_is_a_413_problem(client, sidecar):
    resp = await client.post("/orders", content=padded_order(TOO_LARGE), headers=KEY)

    assert_too_large(resp)
    assert sidecar.calls() == []


async def test_a_chunked_body_over_64_kib_is_cut_off_with_a_413_problem(client, sidecar):
    headers = {**KEY, "Content-Type": "application/json"}

    resp = await client.post("/orders", content=chunks(padded_order(TOO_LARGE)), headers=headers)

    assert "content-length" not in resp.request.headers
    assert_too_large(resp)
    assert sidecar.calls() == []


async def test_a_chunked_body_of_exactly_64_kib_is_accepted(client):
    headers = {**KEY, "Content-Type": "application/json"}

    resp = await client.post(
        "/orders", content=chunks(padded_order(MAX_BODY_BYTES)), headers=headers
    )

    assert resp.status_code == 202


async def test_an_oversized_body_on_a_route_that_reads_none_is_still_a_413(client):
    resp = await client.request("GET", "/inventory/tea", content=b"x" * TOO_LARGE)

    assert_too_large(resp)
