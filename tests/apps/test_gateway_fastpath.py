"""The gateway's hot commands (apps/gateway/fastpath.py): served by the lane at the top of
the app when valid, handed on to FastAPI's stack otherwise, and answered exactly as
FastAPI answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.types import Message, Receive, Scope, Send

from actors.toolkit import tracing
from actors.toolkit.client import ActorClient
from actors.toolkit.testing import InMemorySidecar
from apps.gateway.deps import Wallets, fresh_message_id, wallet_client
from apps.gateway.fastpath import HotLane
from apps.gateway.hotroutes import HotCommand, NotServableError, hot_routes
from apps.gateway.main import Settings, create_app
from apps.gateway.routes import inventory, orders, wallets
from tests.apps.conftest import BASE_URL, client_for
from tests.metrics_text import parse, value

JSON = {"Content-Type": "application/json"}
DEPOSIT = "/wallets/cust-1/deposit"
ORDER = {
    "customer_id": "cust-1",
    "lines": [
        {"sku": "tea-green", "quantity": 2, "unit_price": 450},
        {"sku": "mug-white", "quantity": 1, "unit_price": 1200},
    ],
}
CHANGED = {**ORDER, "lines": [{"sku": "tea-green", "quantity": 3, "unit_price": 450}]}
KEYED = {"Idempotency-Key": "checkout-1"}
PLACED = {"json": ORDER, "headers": KEYED}  # a request sent first, its answer not compared


def hot(app: FastAPI) -> list[HotCommand]:
    return hot_routes(app, (wallets.deposit, inventory.restock))


# --- served here, or handed on with the body replayed ----------------------------------------


class Downstream:
    """Stands for FastAPI behind the layer: records what reached it, body included."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    app: FastAPI,
    downstream: Downstream,
    *,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    method: str = "POST",
) -> tuple[int, bytes, Scope]:
    """One request as GatewayApp.__call__ takes it, with `downstream` for FastAPI's stack:
    the status, the body and the scope."""
    sent, scope = await _call(
        app, downstream, path=path, chunks=chunks, headers=headers, method=method
    )
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), scope


async def call_sent(
    app: FastAPI,
    downstream: Downstream,
    *,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
) -> list[Message]:
    """As `call`, the messages sent."""
    sent, _ = await _call(app, downstream, path=path, chunks=chunks, headers=headers, method="POST")
    return sent


async def _call(
    app: FastAPI,
    downstream: Downstream,
    *,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    method: str,
) -> tuple[list[Message], Scope]:
    scope: Scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    scope.update(headers=headers, query_string=b"", scheme="http", server=("gw", 80))
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    lane = app.hot_lane  # type: ignore[attr-defined]
    assert isinstance(lane, HotLane)
    found = lane.match(scope)
    if found is None:
        await downstream(scope, receive, send)
    else:
        await lane.serve(found, scope, receive, send, otherwise=downstream)
    return sent, scope


@pytest.fixture
def app(actors: ActorClient) -> FastAPI:
    return create_app(Settings(), actors=actors)


async def test_a_valid_deposit_is_answered_here_with_its_route_in_the_scope(
    app: FastAPI, sidecar: InMemorySidecar
) -> None:
    downstream = Downstream()
    headers = [(b"content-type", b"application/json"), (b"idempotency-key", b"dep-1")]

    # a body in two chunks is read whole
    status, body, scope = await call(
        app, downstream, path=DEPOSIT, chunks=[b'{"amo', b'unt": 250}'], headers=headers
    )

    assert (status, downstream.bodies) == (200, [])
    assert json.loads(body) == {
        "customer_id": "cust-1",
        "balance": 250,
        "held": 0,
        "available": 250,
    }
    assert scope["route"].path == "/wallets/{customer_id}/deposit"
    assert scope["path_params"] == {"customer_id": "cust-1"}
    assert sidecar.calls("Deposit")[0].payload["message_id"] == "dep-1"


async def test_a_valid_order_is_answered_here_with_its_location_and_version(
    app: FastAPI, sidecar: InMemorySidecar
) -> None:
    downstream = Downstream()
    headers = [(b"content-type", b"application/json"), (b"idempotency-key", b"checkout-1")]
    chunks = [json.dumps(ORDER).encode()]

    sent = await call_sent(app, downstream, path="/orders", chunks=chunks, headers=headers)

    order_id = orders.order_id_for("cust-1", "checkout-1")
    start = sent[0]
    assert (start["status"], downstream.bodies) == (202, [])
    assert (b"location", f"/orders/{order_id}".encode()) in start["headers"]
    assert (b"aggregate-version", b"1") in start["headers"]
    view = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert (view["order_id"], view["status"], view["total"]) == (order_id, "reserving", 2100)
    [placed] = sidecar.calls("Place")
    assert placed.actor_id == order_id


@pytest.mark.parametrize(
    ("path", "chunks", "headers"),
    [
        (DEPOSIT, [b'{"amount": "5"}'], [(b"content-type", b"application/json")]),
        (DEPOSIT, [b'{"amount": 5, "x": 1}'], [(b"content-type", b"application/json")]),
        (DEPOSIT, [b'{"amount": ', b"5"], [(b"content-type", b"application/json")]),
        (DEPOSIT, [b'{"amount": 5}'], [(b"content-type", b"text/plain")]),
        (DEPOSIT, [b'{"amount": 5}'], []),
        ("/wallets/-cust/deposit", [b'{"amount": 5}'], [(b"content-type", b"application/json")]),
        (
            DEPOSIT,
            [b'{"amount": 5}'],
            [(b"content-type", b"application/json"), (b"idempotency-key", b"a b")],
        ),
        ("/inventory/tea/restock", [b'{"quantity": 0}'], [(b"content-type", b"application/json")]),
    ],
    ids=["str", "unknown-field", "not-json", "text-plain", "no-type", "bad-id", "bad-key", "zero"],
)
async def test_anything_fastapi_would_refuse_goes_on_with_its_whole_body(
    app: FastAPI,
    sidecar: InMemorySidecar,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
) -> None:
    downstream = Downstream()

    status, _, _ = await call(app, downstream, path=path, chunks=chunks, headers=headers)

    assert (status, downstream.bodies) == (299, [b"".join(chunks)])
    assert sidecar.calls() == []


async def test_other_routes_and_methods_and_an_overridden_dependency_go_on(app: FastAPI) -> None:
    downstream = Downstream()
    headers = [(b"content-type", b"application/json")]
    body = [b'{"amount": 5}']

    for method, path in [("PUT", DEPOSIT), ("POST", DEPOSIT + "/"), ("POST", "/orders/o/cancel")]:
        answer = await call(app, downstream, path=path, chunks=body, headers=headers, method=method)
        assert answer[0] == 299
    app.dependency_overrides[wallet_client] = lambda: None
    assert (await call(app, downstream, path=DEPOSIT, chunks=body, headers=headers))[0] == 299
    assert len(downstream.bodies) == 4


OVER = b" " * 70_000


@pytest.mark.parametrize(
    ("chunks", "length"),
    [([b"{" + OVER + b"}"], None), ([b"{", OVER, b"}"], None), ([b"{}"], b"70002")],
    ids=["one-message", "streamed", "declared"],
)
async def test_a_body_over_the_limit_goes_on_for_the_413(
    app: FastAPI, sidecar: InMemorySidecar, chunks: list[bytes], length: bytes | None
) -> None:
    downstream = Downstream()
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", length))

    status, _, _ = await call(app, downstream, path=DEPOSIT, chunks=chunks, headers=headers)

    assert status == 299  # FastAPI's stack: the body limit's problem+json 413
    assert sidecar.calls() == []


async def test_with_spans_of_its_own_to_make_the_lane_stands_aside(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "records_spans", lambda: True)  # the server span is the stack's
    downstream = Downstream()
    headers = [(b"content-type", b"application/json")]

    answer = await call(app, downstream, path=DEPOSIT, chunks=[b'{"amount": 5}'], headers=headers)

    assert (answer[0], downstream.bodies) == (299, [b'{"amount": 5}'])


class Recording:
    """The sidecar transport, recording the headers of each call."""

    def __init__(self, inner: InMemorySidecar) -> None:
        self.inner, self.headers = inner, list[dict[str, str]]()

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        self.headers.append(dict(kwargs.get("headers") or {}))
        return await self.inner.request(method, path, **kwargs)


async def test_the_incoming_trace_context_goes_on_to_the_actor_call() -> None:
    transport = Recording(InMemorySidecar())
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async with client_for(ActorClient(transport)) as client:
        resp = await client.post(DEPOSIT, json={"amount": 5}, headers={"traceparent": traceparent})
        plain = await client.post(DEPOSIT, json={"amount": 5})

    assert (resp.status_code, plain.status_code) == (200, 200)
    assert [h.get("traceparent") for h in transport.headers] == [traceparent, None]
    assert tracing.current_traceparent() == ""  # nothing left behind


async def test_without_an_actor_client_fastapi_answers_503() -> None:
    async with client_for(None) as client:  # type: ignore[arg-type]
        resp = await client.post(DEPOSIT, json={"amount": 5})

    assert resp.status_code == 503
    assert resp.json()["code"] == "runtime.unavailable"


# --- the same answers as FastAPI's route ------------------------------------------------------


def fastapi_only(app: FastAPI) -> FastAPI:
    app.hot_lane = None  # type: ignore[attr-defined]
    return app


async def utf16() -> AsyncIterator[bytes]:
    yield '{"amount": 7}'.encode("utf-16")


async def two_chunks() -> AsyncIterator[bytes]:
    yield b'{"amount"'
    yield b": 9}"


Setup = Callable[[InMemorySidecar], None]
BALANCE_LIMIT = json.dumps(
    {
        "ok": False,
        "error": {"code": "wallet.balance_limit_exceeded", "detail": "too much", "context": {}},
    }
).encode()
CASES: list[tuple[str, str, dict[str, Any], Setup | None]] = [
    ("deposit", DEPOSIT, {"json": {"amount": 250}}, None),
    ("keyed", DEPOSIT, {"json": {"amount": 5}, "headers": {"Idempotency-Key": "k:1"}}, None),
    ("restock", "/inventory/tea/restock", {"json": {"quantity": 3}}, None),
    ("chunked", DEPOSIT, {"content": two_chunks, "headers": JSON}, None),
    (
        "charset",
        DEPOSIT,
        {
            "content": b'{"amount": 1}',
            "headers": {"Content-Type": "application/json; charset=utf-8"},
        },
        None,
    ),
    ("utf16", DEPOSIT, {"content": utf16, "headers": JSON}, None),
    ("str", DEPOSIT, {"json": {"amount": "5"}}, None),
    ("float", DEPOSIT, {"json": {"amount": 5.0}}, None),
    ("missing", DEPOSIT, {"json": {}}, None),
    ("array", DEPOSIT, {"json": [1]}, None),
    ("empty", DEPOSIT, {"content": b"", "headers": JSON}, None),
    ("not-json", DEPOSIT, {"content": b"{amount", "headers": JSON}, None),
    (
        "text",
        DEPOSIT,
        {"content": b'{"amount": 5}', "headers": {"Content-Type": "text/plain"}},
        None,
    ),
    ("bad-id", "/wallets/-x/deposit", {"json": {"amount": 5}}, None),
    ("bad-key", DEPOSIT, {"json": {"amount": 5}, "headers": {"Idempotency-Key": "a b"}}, None),
    ("too-large", DEPOSIT, {"content": b"{" + b" " * 70_000 + b"}", "headers": JSON}, None),
    ("unavailable", DEPOSIT, {"json": {"amount": 5}}, lambda s: s.fail()),
    ("refused", DEPOSIT, {"json": {"amount": 5}}, lambda s: s.answer(200, BALANCE_LIMIT)),
    ("crash", DEPOSIT, {"json": {"amount": 5}}, lambda s: s.fail(error=RuntimeError("boom"))),
    ("order", "/orders", {"json": ORDER, "headers": KEYED}, None),
    ("order-again", "/orders", {"json": ORDER, "headers": KEYED, "first": PLACED}, None),
    ("order-changed", "/orders", {"json": CHANGED, "headers": KEYED, "first": PLACED}, None),
    ("order-no-key", "/orders", {"json": ORDER}, None),
    ("order-bad-key", "/orders", {"json": ORDER, "headers": {"Idempotency-Key": "a/b"}}, None),
    ("order-no-lines", "/orders", {"json": {**ORDER, "lines": []}, "headers": KEYED}, None),
    ("order-unavailable", "/orders", {"json": ORDER, "headers": KEYED}, lambda s: s.fail()),
]


async def answer(app: FastAPI, path: str, request: dict[str, Any]) -> tuple[int, list[Any], bytes]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        kwargs = dict(request)
        if "first" in kwargs:
            await client.post(path, **kwargs.pop("first"))
        if callable(kwargs.get("content")):
            kwargs["content"] = kwargs["content"]()
        resp = await client.post(path, **kwargs)
    return resp.status_code, sorted(resp.headers.multi_items()), resp.content


# the cases the lane answers itself (a valid request, whatever the actor answers); FastAPI's
# stack answers the others
SERVED_BY_THE_LANE = {"deposit", "keyed", "restock", "chunked", "unavailable", "refused", "crash"}
SERVED_BY_THE_LANE |= {"order", "order-again", "order-changed", "order-unavailable"}


def spy_on(lane: HotLane, served: list[bool]) -> None:
    """Record in `served` whether the lane took each request."""
    run = lane.run

    async def spied(*args: Any) -> bool:
        taken = True  # unless it declines (a crash is answered, then raised)
        try:
            taken = await run(*args)
            return taken
        finally:
            served.append(taken)

    lane.run = spied  # type: ignore[method-assign,assignment]


@pytest.mark.parametrize(("name", "path", "request_", "setup"), CASES, ids=[c[0] for c in CASES])
async def test_every_answer_is_byte_for_byte_the_one_fastapis_route_gives(
    name: str, path: str, request_: dict[str, Any], setup: Setup | None
) -> None:
    answers, served = [], list[bool]()
    for build in (lambda app: app, fastapi_only):
        sidecar = InMemorySidecar()  # each app its own actors: the same state, the same answers
        if setup is not None:
            setup(sidecar)
        app = build(create_app(Settings(), actors=ActorClient(sidecar)))
        lane: HotLane | None = getattr(app, "hot_lane", None)
        if lane is not None:
            spy_on(lane, served)
        answers.append(await answer(app, path, request_))

    hot_answer, fastapi_answer = answers
    assert hot_answer == fastapi_answer
    assert hot_answer[0] in {200, 202, 400, 409, 413, 422, 500, 503}
    assert bool(served and served[-1]) is (name in SERVED_BY_THE_LANE)  # the request compared


async def test_a_hot_command_is_counted_under_its_route_template(actors: ActorClient) -> None:
    async with client_for(actors) as client:
        for customer in ("cust-1", "cust-2"):
            assert (
                await client.post(f"/wallets/{customer}/deposit", json={"amount": 1})
            ).status_code == 200
        assert (await client.post(DEPOSIT, json={"amount": 0})).status_code == 422
        found = parse((await client.get("/metrics")).text)

    requests, route = "orderflow_http_requests_total", "/wallets/{customer_id}/deposit"
    assert value(found, requests, method="POST", route=route, status="200") == 2
    assert value(found, requests, method="POST", route=route, status="422") == 1
    count = "orderflow_http_request_duration_seconds_count"
    assert value(found, count, method="POST", route=route) == 3


# --- which routes can be served here ------------------------------------------------------------


def test_the_hot_routes_are_the_deposit_and_the_restock_with_their_dependencies(
    app: FastAPI,
) -> None:
    deposit, restock = hot(app)

    assert (deposit.route.endpoint, restock.route.endpoint) == (wallets.deposit, inventory.restock)
    assert deposit.path_regex.match("/wallets/cust-1/deposit")
    assert (deposit.clients[0][0], restock.clients[0][0]) == ("wallets", "inventory")
    assert deposit.key_param == restock.key_param == "key"


def test_a_routers_prefix_in_the_app_is_the_path_served() -> None:
    app = FastAPI()
    app.include_router(wallets.router, prefix="/v2")

    [deposit] = hot_routes(app, (wallets.deposit,))

    assert deposit.path_regex.match("/v2/wallets/cust-1/deposit")
    assert not deposit.path_regex.match("/wallets/cust-1/deposit")


async def needs_a_token() -> None:
    return None


def test_a_route_declaring_more_than_this_layer_provides_stays_fastapis() -> None:
    router = APIRouter()

    @router.post("/w/{customer_id}/deposit")
    async def with_query(
        customer_id: str, body: dict[str, int], wallets: Wallets, q: int = Query(0)
    ) -> dict[str, int]:
        return {}

    @router.post("/w/{customer_id}/echo")
    async def with_request(customer_id: str, body: dict[str, int], request: Request) -> None:
        return None

    with_auth = FastAPI()  # e.g. an auth dependency added where the router is included
    with_auth.include_router(wallets.router, dependencies=[Depends(needs_a_token)])
    app = FastAPI()
    app.include_router(router)
    app.include_router(orders.router)
    app.include_router(wallets.router)

    with pytest.raises(NotServableError, match="query"):
        hot_routes(app, (with_query,))
    with pytest.raises(NotServableError, match="request"):
        hot_routes(app, (with_request,))
    with pytest.raises(NotServableError, match="needs_a_token"):
        hot_routes(with_auth, (wallets.deposit,))
    with pytest.raises(NotServableError, match="no route"):
        hot_routes(app, (inventory.restock,))


def test_a_fresh_message_id_is_a_uuid4_in_hex() -> None:
    ids = {fresh_message_id() for _ in range(1000)}

    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.hex, parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
