"""The fast path answers Dapr's actor callbacks as the SDK's DaprActor routes do.

Two apps over the same registered actor type: one with the SDK's FastAPI routes only,
one with `FastRoutes(actor_routes())` and no SDK routes at all (so every answer there
came from the fast path). Each request gets the same status and body from both.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from dapr.actor import Actor, ActorInterface, ActorRuntime, Remindable, actormethod
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI
from starlette.types import Scope

from actors.toolkit.fastpath import Answer, FastRoute, FastRoutes, actor_routes, read_body
from actors.toolkit.sidecar import SidecarActorClient
from actors.toolkit.testing import InMemorySidecar

REMINDED: list[tuple[str, str, bytes]] = []
REMINDER = b'{"data": "c3RhdGU=", "dueTime": "0h0m1s", "period": "0h0m1s"}'  # as daprd sends


class ToyInterface(ActorInterface):
    @actormethod(name="Echo")  # type: ignore[untyped-decorator]
    async def echo(self, data: Any) -> Any: ...

    @actormethod(name="Fail")  # type: ignore[untyped-decorator]
    async def fail(self) -> None: ...


class FastPathToy(Actor, ToyInterface, Remindable):
    async def echo(self, data: Any) -> Any:
        return {"echo": data, "id": self.id.id}

    async def fail(self) -> None:
        raise RuntimeError("the toy refuses")

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: dt.timedelta,
        period: dt.timedelta,
        ttl: dt.timedelta | None = None,
    ) -> None:
        REMINDED.append((self.id.id, name, state))


@pytest.fixture
async def clients() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    await ActorRuntime.register_actor(
        FastPathToy, actor_client=SidecarActorClient(InMemorySidecar())
    )
    sdk = FastAPI()
    DaprActor(sdk)
    fast = FastAPI()
    fast.add_middleware(FastRoutes, routes=actor_routes())
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=sdk), base_url="http://a") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://a") as two,
    ):
        yield one, two


CASES = [
    ("/actors/FastPathToy/toy-1/method/Echo", b'{"n": 1}'),
    ("/actors/FastPathToy/toy%201/method/Echo", b'"spaced id"'),
    ("/actors/FastPathToy/toy-1/method/Fail", b""),
    ("/actors/FastPathToy/toy-1/method/NoSuchMethod", b""),
    ("/actors/NoSuchActor/toy-1/method/Echo", b"{}"),
    ("/actors/FastPathToy/toy-2/method/remind/deadline", REMINDER),
    ("/actors/FastPathToy/toy-2/method/remind/deadline", b'{"data": "no times"}'),
    ("/actors/NoSuchActor/toy-2/method/remind/deadline", b"{}"),
    ("/actors/FastPathToy/toy-3/method/timer/nope", b"{}"),
]


@pytest.mark.parametrize(("path", "body"), CASES, ids=[c[0].split("/", 4)[-1] for c in CASES])
async def test_the_fast_path_answers_as_the_sdk_routes_do(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str, body: bytes
) -> None:
    sdk, fast = clients
    expected = await sdk.put(path, content=body)
    got = await fast.put(path, content=body)
    assert got.status_code == expected.status_code
    assert json.loads(got.content) == json.loads(expected.content)
    assert got.headers["content-type"].split(";")[0] == "application/json"


async def test_a_method_result_and_a_reminder_reach_the_actor(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    _, fast = clients
    echoed = await fast.put("/actors/FastPathToy/toy-9/method/Echo", content=b"[1, 2]")
    assert echoed.status_code == 200
    assert echoed.json() == {"echo": [1, 2], "id": "toy-9"}
    REMINDED.clear()
    reminded = await fast.put("/actors/FastPathToy/toy-9/method/remind/ping", content=REMINDER)
    assert reminded.status_code == 200
    assert REMINDED == [("toy-9", "ping", b"state")]


async def test_other_requests_go_on_to_the_app_and_a_failing_handler_is_a_500() -> None:
    async def boom(params: dict[str, str], body: bytes, scope: Scope) -> Answer:
        raise ValueError(params["x"])

    async def echo(params: dict[str, str], body: bytes, scope: Scope) -> Answer:
        return Answer(201, body + params["x"].encode(), b"text/plain")

    app = FastAPI()

    @app.post("/slow/{x}")
    async def slow(x: str) -> dict[str, str]:
        return {"slow": x}

    app.add_middleware(
        FastRoutes,
        routes=[
            FastRoute("POST", re.compile(r"/fast/(?P<x>[^/]+)"), echo),
            FastRoute("POST", re.compile(r"/boom/(?P<x>[^/]+)"), boom),
        ],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        fast = await c.post("/fast/y", content=b"body-")
        assert (fast.status_code, fast.content) == (201, b"body-y")
        assert fast.headers["content-length"] == "6"
        assert (await c.post("/slow/y")).json() == {"slow": "y"}
        assert (await c.get("/fast/y")).status_code == 404  # another method: on to the app
        assert (await c.post("/boom/y")).status_code == 500


async def test_a_body_in_several_messages_is_read_whole_and_a_disconnect_is_none() -> None:
    messages = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    assert await read_body(receive) == b"abcd"

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert await read_body(gone) is None
