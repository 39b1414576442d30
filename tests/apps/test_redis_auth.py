"""A Redis that requires a password (ORDERFLOW_REDIS_PASSWORD): every client of ours
authenticates, again after a reconnect, and a wrong or missing password is refused
clearly. Against the session's real redis-server, `requirepass` set for each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ConnectionError

from actors.toolkit.redis_connection import (
    feed_client,
    host_of,
    password_of,
    redis_client,
    redis_password_from_env,
)
from actors.toolkit.redis_multiplex import MultiplexedRedis
from apps.actor_host.main import Settings as ActorHostSettings
from apps.console.main import Settings as ConsoleSettings
from apps.gateway.main import Settings as GatewaySettings
from apps.projector.main import Settings as ProjectorSettings
from apps.shipping.main import Settings as ShippingSettings

PASSWORD = "s3cret-for-tests"


@pytest.fixture
async def host(redis_port: int) -> AsyncIterator[str]:
    """The session's Redis with a password for the test's length."""
    admin = aioredis.Redis(port=redis_port)
    await admin.config_set("requirepass", PASSWORD)
    await admin.aclose()
    try:
        yield f"127.0.0.1:{redis_port}"
    finally:
        admin = aioredis.Redis(port=redis_port, password=PASSWORD)
        await admin.config_set("requirepass", "")
        await admin.aclose()


async def test_the_shared_connection_authenticates_and_again_after_a_reconnect(host: str) -> None:
    shared = MultiplexedRedis(host, password=PASSWORD, decode=True)
    try:
        await shared.execute("SET", "auth-test", "1")
        assert await shared.execute("GET", "auth-test") == "1"

        admin = redis_client(host, password=PASSWORD)
        await admin.client_kill_filter(_type="normal", skipme=True)  # drops `shared`'s
        await admin.aclose()

        async def answers() -> str:
            while True:
                try:
                    reply: str = await shared.execute("GET", "auth-test")
                    return reply
                except ConnectionError:  # the kill seen: the next call opens a new one
                    await asyncio.sleep(0.05)

        assert await asyncio.wait_for(answers(), timeout=5) == "1"
    finally:
        await shared.aclose()


async def test_a_wrong_password_or_none_is_refused_as_an_authentication_error(host: str) -> None:
    wrong = MultiplexedRedis(host, password="not-it")
    with pytest.raises(AuthenticationError, match="Redis refused AUTH"):
        await wrong.execute("PING")
    await wrong.aclose()

    anonymous = MultiplexedRedis(host)
    with pytest.raises(AuthenticationError):  # NOAUTH, as redis-py names it
        await anonymous.execute("PING")
    await anonymous.aclose()


async def test_the_pooled_and_the_feed_clients_carry_the_password(host: str) -> None:
    pooled = redis_client(host, password=PASSWORD)
    try:
        assert await pooled.ping()
        assert password_of(pooled) == PASSWORD
        # a stream feed's reads open their own shared connection from its client's
        # (actors/toolkit/streamfeed.py): the password comes along
        reads = MultiplexedRedis(host_of(pooled), password=password_of(pooled))
        assert await reads.execute("PING") == b"PONG"
        await reads.aclose()
    finally:
        await pooled.aclose()
    async with feed_client(host, password=PASSWORD) as feed:
        assert await feed.ping()


def test_every_app_reads_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERFLOW_REDIS_PASSWORD", raising=False)
    assert redis_password_from_env() is None
    monkeypatch.setenv("ORDERFLOW_REDIS_PASSWORD", PASSWORD)

    assert redis_password_from_env() == PASSWORD
    for settings in (
        ActorHostSettings,
        ConsoleSettings,
        GatewaySettings,
        ProjectorSettings,
        ShippingSettings,
    ):
        assert settings.from_env().redis_password == PASSWORD, settings.__module__
