"""The gateway app over an in-memory ASGI transport, wired to fake actors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from actors.toolkit.client import ActorClient
from apps.gateway.main import Settings, create_app
from tests.apps.fakes import FakeActors

BASE_URL = "http://gateway.test"


def client_for(actors: ActorClient, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    app = create_app(Settings(), actors=actors)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@pytest.fixture
def actors() -> FakeActors:
    return FakeActors()


@pytest.fixture
async def client(actors: FakeActors) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(actors) as http:
        yield http
