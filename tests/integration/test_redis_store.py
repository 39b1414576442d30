"""The store contract on the production store: the fenced Lua append on a real redis-server."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from actors.toolkit.redis_store import RedisStores, state_key
from actors.toolkit.store import SNAPSHOT_KEY, Append, ConcurrencyError, Item, event_key
from cluster.processes import wait_until
from tests.store_contract import StoreContract, StoreOf, appending


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of this module's own (Debian's package, as the cluster runs it)."""
    port = _free_port()
    data = Path(tmp_path_factory.mktemp("redis-store"))
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    argv += ["--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        ping = ["redis-cli", "-p", str(port), "ping"]
        wait_until(
            lambda: (
                subprocess.run(ping, capture_output=True, check=False).stdout.strip() == b"PONG"
            ),
            timeout=10,
            what="redis-server to answer",
        )
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def client(redis_port: int) -> AsyncIterator[Redis]:
    redis = Redis(host="127.0.0.1", port=redis_port)
    yield redis
    await redis.aclose()


class TestRedisStore(StoreContract):
    @pytest.fixture
    def stores(self, client: Redis) -> StoreOf:
        backing = RedisStores(client, app_id="actor-host")
        return lambda actor_id: backing("InventoryActor", actor_id)


async def test_keys_follow_daprs_actor_state_layout(client: Redis) -> None:
    """What daprd's state.redis reads: "<app>||<type>||<id>||<key>", a hash {data, version}."""
    store = RedisStores(client, app_id="actor-host")("InventoryActor", "sku-layout")
    await store.append(appending(0, 1, message_id="m-layout"))
    await store.append(appending(1, 1))
    key = state_key("actor-host", "InventoryActor", "sku-layout", SNAPSHOT_KEY)
    assert key == "actor-host||InventoryActor||sku-layout||aggregate"
    snapshot = await client.hgetall(key)
    assert set(snapshot) == {b"data", b"version"}
    assert snapshot[b"version"] == b"2"  # Dapr's etag: one more per write
    event = await client.hgetall(state_key("actor-host", "InventoryActor", "sku-layout", "event-1"))
    assert event[b"version"] == b"1"
    inbox = state_key("actor-host", "InventoryActor", "sku-layout", "inbox-m-layout")
    assert 0 < await client.ttl(inbox) <= 60


async def test_a_refused_append_leaves_redis_untouched(client: Redis) -> None:
    store = RedisStores(client, app_id="actor-host")("InventoryActor", "sku-untouched")
    await store.append(appending(0, 1))
    before = sorted(await client.keys("actor-host||InventoryActor||sku-untouched||*"))
    stale = Append(
        expected_version=0,
        snapshot=b'{"version": 3}',
        events=(Item(event_key(2), b"{}"), Item(event_key(3), b"{}")),
        inbox=Item("inbox-x", b"{}", dt.timedelta(seconds=5)),
    )
    with pytest.raises(ConcurrencyError, match="expected version 0, found 1"):
        await store.append(stale)
    assert sorted(await client.keys("actor-host||InventoryActor||sku-untouched||*")) == before
