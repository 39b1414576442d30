"""The store contract on the production store: the fenced Lua append on a real redis-server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from actors.toolkit.redis_multiplex import MultiplexedRedis
from actors.toolkit.redis_store import RedisDueIndex, RedisStores, state_key
from actors.toolkit.store import (
    SNAPSHOT_KEY,
    Append,
    ConcurrencyError,
    Due,
    Item,
    Publication,
    event_key,
)
from cluster.ports import any_free_port
from cluster.processes import wait_until
from tests.store_contract import StoreContract, StoreOf, appending, version_of


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of this module's own (Debian's package, as the cluster runs it)."""
    port = any_free_port()
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


@pytest.fixture
async def stores(redis_port: int) -> AsyncIterator[RedisStores]:
    """The stores as the actor host builds them: over one shared connection."""
    multiplexed = MultiplexedRedis(f"127.0.0.1:{redis_port}")
    yield RedisStores(multiplexed, app_id="actor-host")
    await multiplexed.aclose()


class TestRedisStore(StoreContract):
    @pytest.fixture(name="stores")
    def contract_stores(self, stores: RedisStores) -> StoreOf:
        return lambda actor_id: stores("InventoryActor", actor_id)


async def test_keys_follow_daprs_actor_state_layout(client: Redis, stores: RedisStores) -> None:
    """What daprd's state.redis reads: "<app>||<type>||<id>||<key>", a hash {data, version}."""
    store = stores("InventoryActor", "sku-layout")
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


async def test_a_refused_append_leaves_redis_untouched(client: Redis, stores: RedisStores) -> None:
    store = stores("InventoryActor", "sku-untouched")
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


@pytest.mark.parametrize(
    ("document", "stored"),
    [
        (b'{"version":7,"published":7,"state":{}}', 7),  # as Snapshot writes it
        (b'{ "version" : 7 }', 7),
        (b'{"state":{"version":99},"version":7}', 7),  # not leading: decoded, top level
        (b'{"published":1,"version":7,"state":{"version":3}}', 7),
        (b'{"versions":3,"version":7}', 7),
    ],
)
async def test_the_fence_reads_the_stored_version_of_any_snapshot_shape(
    client: Redis, stores: RedisStores, document: bytes, stored: int
) -> None:
    """The script reads a leading version without decoding; any other shape is decoded."""
    actor_id = f"sku-shape-{abs(hash(document))}"
    key = state_key("actor-host", "InventoryActor", actor_id, SNAPSHOT_KEY)
    await client.hset(key, mapping={"data": document, "version": 1})
    store = stores("InventoryActor", actor_id)
    with pytest.raises(ConcurrencyError) as refused:
        await store.append(appending(stored - 1, 1))
    assert refused.value.found == stored
    await store.append(appending(stored, 1))
    written = await client.hget(key, "data")
    assert isinstance(written, bytes)
    assert version_of(written) == stored + 1


async def stream_data(client: Redis, stream: str) -> list[dict[bytes, bytes]]:
    """The fields of every entry of `stream`, in order."""
    entries: Any = await client.xrange(stream)
    return [dict(fields) for _, fields in entries]


def published(append: Append, stream: str, *messages: bytes, max_len: int = 0) -> Append:
    return dataclasses.replace(append, publication=Publication(stream, max_len, messages))


async def test_an_append_adds_its_stream_entries_as_pubsub_redis_writes_them(
    client: Redis,
    stores: RedisStores,
) -> None:
    """Entries {data: <message>} on the topic's stream, in order, with everything else."""
    store = stores("InventoryActor", "sku-stream")
    stream = "topic-stream-1"
    await store.append(published(appending(0, 2, message_id="m-s"), stream, b'{"a":1}', b'{"b":2}'))

    assert await stream_data(client, stream) == [{b"data": b'{"a":1}'}, {b"data": b'{"b":2}'}]
    inbox = state_key("actor-host", "InventoryActor", "sku-stream", "inbox-m-s")
    assert await client.hget(inbox, "data") == b'{"result":1}'  # the arguments line up
    assert 0 < await client.ttl(inbox) <= 60
    assert version_of(await store.read(SNAPSHOT_KEY)) == 2


async def test_a_refused_or_duplicate_append_adds_no_stream_entry(
    client: Redis, stores: RedisStores
) -> None:
    store = stores("InventoryActor", "sku-stream-no")
    stream = "topic-stream-2"
    await store.append(published(appending(0, 1, message_id="m-1"), stream, b"first"))

    with pytest.raises(ConcurrencyError):
        await store.append(published(appending(0, 1), stream, b"stale"))
    seen = await store.append(published(appending(1, 1, message_id="m-1"), stream, b"again"))

    assert seen == b'{"result":1}'
    assert await stream_data(client, stream) == [{b"data": b"first"}]


async def test_a_bounded_stream_is_trimmed_approximately_as_the_component_trims(
    client: Redis,
    stores: RedisStores,
) -> None:
    store = stores("InventoryActor", "sku-stream-trim")
    stream = "topic-stream-3"
    for version in range(500):
        await store.append(published(appending(version, 1), stream, b"e", max_len=10))

    length = await client.xlen(stream)
    assert 10 <= length < 500  # MAXLEN ~: whole macro nodes are dropped, never below 10


async def test_an_append_sets_and_removes_the_actors_due_entry_with_everything_else(
    client: Redis,
    stores: RedisStores,
) -> None:
    store = stores("OrderActor", "ord-due")
    index = "test||deadlines||0"
    due = RedisDueIndex(client)
    await store.append(dataclasses.replace(appending(0, 1), due=Due(index, "ord-due", 5_000)))
    assert await client.zscore(index, "ord-due") == 5_000
    assert await due.due(index, 4_999, 10) == []
    assert await due.due(index, 5_000, 10) == ["ord-due"]

    with pytest.raises(ConcurrencyError):  # a refused append leaves the entry as it was
        await store.append(dataclasses.replace(appending(0, 1), due=Due(index, "ord-due", 9)))
    assert await client.zscore(index, "ord-due") == 5_000

    await store.append(dataclasses.replace(appending(1, 1), due=Due(index, "ord-due", None)))
    assert await client.zscore(index, "ord-due") is None


async def test_an_append_with_an_inbox_a_due_entry_and_stream_entries_lines_its_arguments_up(
    client: Redis,
    stores: RedisStores,
) -> None:
    store = stores("OrderActor", "ord-all")
    index, stream = "test||deadlines||1", "topic-stream-4"
    append = published(appending(0, 2, message_id="m-all"), stream, b"one", b"two")
    await store.append(dataclasses.replace(append, due=Due(index, "ord-all", 42)))

    inbox = state_key("actor-host", "OrderActor", "ord-all", "inbox-m-all")
    assert await client.hget(inbox, "data") == b'{"result":1}'
    assert await client.zscore(index, "ord-all") == 42
    assert await stream_data(client, stream) == [{b"data": b"one"}, {b"data": b"two"}]


async def test_the_due_index_answers_the_earliest_first_up_to_the_limit(client: Redis) -> None:
    index = "test||deadlines||2"
    await client.zadd(index, {"late": 30, "early": 10, "middle": 20, "future": 99})
    assert await RedisDueIndex(client).due(index, 50, 2) == ["early", "middle"]
    assert await RedisDueIndex(client).due(index, 50, 10) == ["early", "middle", "late"]
