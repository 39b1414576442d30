"""The gateway app over an in-memory ASGI transport, on the in-memory sidecar; a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from actors.toolkit.client import ActorClient
from actors.toolkit.testing import InMemorySidecar
from apps.gateway.main import Settings, create_app
from cluster.ports import any_free_port

BASE_URL = "http://gateway.test"


def client_for(actors: ActorClient, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    app = create_app(Settings(), actors=actors)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@contextlib.asynccontextmanager
async def running(app: FastAPI, *, base_url: str = BASE_URL) -> AsyncIterator[httpx.AsyncClient]:
    """A client on `app` over the ASGI transport, inside the app's lifespan (which the
    transport does not run)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@pytest.fixture
def sidecar() -> InMemorySidecar:
    """The real actors behind an in-memory sidecar."""
    return InMemorySidecar()


@pytest.fixture
def actors(sidecar: InMemorySidecar) -> ActorClient:
    """The real ActorClient, on the in-memory sidecar."""
    return ActorClient(sidecar)


@pytest.fixture
async def client(actors: ActorClient) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(actors) as http:
        yield http


# --- a real redis-server (the read-model tests), one per session on a free port ------------


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not found: run `make redis` (make test does)")
    # ORDERFLOW_TEST_REDIS_PORT: a port of one's own (runs side by side), else a free one
    port = int(os.environ.get("ORDERFLOW_TEST_REDIS_PORT") or any_free_port())
    workdir = tmp_path_factory.mktemp("redis")
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    log = Path(workdir / "redis.log").open("wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"redis-server did not start: {(workdir / 'redis.log').read_text()}"
                    )
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[aioredis.Redis]:
    """A client to the session's Redis, emptied before each test."""
    client = aioredis.Redis(port=redis_port, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def raw(redis_port: int, redis: aioredis.Redis) -> AsyncIterator[aioredis.Redis]:
    """A bytes client (a stream feed's kind) to the session's Redis, emptied by `redis`."""
    client = aioredis.Redis(port=redis_port)
    yield client
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], *, what: str) -> None:
    """Poll `check` until it holds (10 s at most); no timing is asserted."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")
