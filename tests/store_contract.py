"""The event store contract: every EventStore implementation runs these tests.

A subclass provides the `stores` fixture: a factory of stores over ONE shared backing
(every store it returns for the same actor id sees the same keys), like several
activations of one actor on several hosts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest

from actors.toolkit.store import (
    SNAPSHOT_KEY,
    Append,
    ConcurrencyError,
    EventStore,
    Item,
    Remembered,
    event_key,
    memory_key,
)

StoreOf = Callable[[str], EventStore]  # actor id -> a store of that actor


def snapshot(version: int, note: str = "") -> bytes:
    return json.dumps({"version": version, "published": 0, "state": {"note": note}}).encode()


def appending(
    expected: int, count: int, *, note: str = "", message_id: str | None = None
) -> Append:
    """`count` events after `expected`, the snapshot at the new version, an inbox entry."""
    events = tuple(
        Item(event_key(v), json.dumps({"v": v, "note": note}).encode())
        for v in range(expected + 1, expected + count + 1)
    )
    inbox = None
    if message_id:
        inbox = Item(f"inbox-{message_id}", b'{"result":1}', dt.timedelta(seconds=60))
    return Append(
        expected_version=expected,
        snapshot=snapshot(expected + count, note) if count else None,
        events=events,
        inbox=inbox,
    )


def version_of(raw: bytes | None) -> int:
    return int(json.loads(raw)["version"]) if raw else 0


class StoreContract:
    @pytest.fixture
    def actor_id(self) -> str:
        return f"actor-{uuid.uuid4().hex[:10]}"

    async def test_an_append_at_the_expected_version_writes_everything(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        store = stores(actor_id)
        await store.append(appending(0, 2, note="first", message_id="m1"))
        assert version_of(await store.read(SNAPSHOT_KEY)) == 2
        one, two = await store.read_many([event_key(1), event_key(2)])
        assert one is not None
        assert json.loads(one) == {"v": 1, "note": "first"}
        assert two is not None
        assert await store.read("inbox-m1") == b'{"result":1}'
        assert await store.read_many([event_key(3)]) == [None]

    async def test_a_second_append_at_the_same_version_fails_and_writes_nothing(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        await stores(actor_id).append(appending(0, 1, note="winner", message_id="m-win"))
        with pytest.raises(ConcurrencyError) as caught:
            await stores(actor_id).append(appending(0, 1, note="loser", message_id="m-lose"))
        assert (caught.value.expected, caught.value.found) == (0, 1)
        store = stores(actor_id)
        raw = await store.read(event_key(1))
        assert raw is not None
        assert json.loads(raw)["note"] == "winner"
        assert await store.read("inbox-m-lose") is None
        snap = await store.read(SNAPSHOT_KEY)
        assert snap is not None
        assert json.loads(snap)["state"]["note"] == "winner"

    async def test_a_stale_two_event_append_leaves_no_orphan_event_key(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        await stores(actor_id).append(appending(0, 1, note="winner"))
        with pytest.raises(ConcurrencyError):
            await stores(actor_id).append(appending(0, 2, note="stale"))
        assert await stores(actor_id).read(event_key(2)) is None

    async def test_an_existing_event_key_refuses_the_append_even_at_the_right_version(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        store = stores(actor_id)
        await store.append(appending(0, 1))
        # a snapshot that lags its log (as if rolled back): the log must never be overwritten
        await store.append(Append(expected_version=1, snapshot=snapshot(0)))
        with pytest.raises(ConcurrencyError):
            await store.append(appending(0, 1, note="overwrite"))
        raw = await store.read(event_key(1))
        assert raw is not None
        assert json.loads(raw)["note"] == ""

    async def test_an_append_whose_message_id_is_in_the_inbox_writes_nothing_and_answers_it(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        store = stores(actor_id)
        assert await store.append(appending(0, 1, note="first", message_id="m-dup")) is None
        # the same message again, decided on the new state (version 1) or on a stale one (0):
        # the inbox answers first, whatever the version, and nothing is written
        for expected in (1, 0):
            again = appending(expected, 1, note="again", message_id="m-dup")
            assert await store.append(again) == b'{"result":1}'
        assert version_of(await store.read(SNAPSHOT_KEY)) == 1
        assert await store.read(event_key(2)) is None
        raw = await store.read(event_key(1))
        assert raw is not None
        assert json.loads(raw)["note"] == "first"

    async def test_an_inbox_only_append_is_fenced_too(self, stores: StoreOf, actor_id: str) -> None:
        await stores(actor_id).append(appending(0, 1))
        with pytest.raises(ConcurrencyError):
            await stores(actor_id).append(appending(0, 0, message_id="m-noop"))
        assert await stores(actor_id).read("inbox-m-noop") is None
        await stores(actor_id).append(appending(1, 0, message_id="m-noop"))
        assert await stores(actor_id).read("inbox-m-noop") is not None
        assert version_of(await stores(actor_id).read(SNAPSHOT_KEY)) == 1

    async def test_concurrent_writers_get_exactly_one_winner_per_version(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        writers, rounds = 8, 6
        wins: list[tuple[int, int]] = []  # (version, writer)
        conflicts = 0

        async def writer(n: int) -> None:
            nonlocal conflicts
            store = stores(actor_id)
            for _ in range(rounds):
                version = version_of(await store.read(SNAPSHOT_KEY))
                try:
                    await store.append(
                        appending(version, 1, note=f"w{n}", message_id=f"{n}-{version}")
                    )
                except ConcurrencyError:
                    conflicts += 1
                else:
                    wins.append((version + 1, n))
                await asyncio.sleep(0)

        await asyncio.gather(*(writer(n) for n in range(writers)))
        versions = [v for v, _ in wins]
        assert sorted(versions) == list(range(1, len(wins) + 1))  # one winner each, no gap
        assert len(wins) + conflicts == writers * rounds
        store = stores(actor_id)
        assert version_of(await store.read(SNAPSHOT_KEY)) == len(wins)
        stored = await store.read_many([event_key(v) for v, _ in sorted(wins)])
        for (_, n), raw in zip(sorted(wins), stored, strict=True):
            assert raw is not None
            assert json.loads(raw)["note"] == f"w{n}"  # the event is the winner's
        inboxes = await store.read_many(
            [f"inbox-{n}-{v}" for n in range(writers) for v in range(len(wins) + 1)]
        )
        assert sum(raw is not None for raw in inboxes) == len(wins)  # losers left none

    # --- bounded memories: a list beside the snapshot, written only by the append ----------

    async def test_an_append_adds_ids_to_a_memory_and_keeps_only_the_newest(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        store, key = stores(actor_id), memory_key("settled")
        assert await store.read_memory(key) == []
        first = appending(0, 1)
        await store.append(replace(first, memories=(Remembered(key, ("o1", "o2"), 3),)))
        assert await store.read_memory(key) == ["o1", "o2"]
        second = appending(1, 1)
        await store.append(replace(second, memories=(Remembered(key, ("o3", "o4"), 3),)))
        assert await store.read_memory(key) == ["o2", "o3", "o4"]  # oldest first, 3 kept
        assert await stores(actor_id).read_memory(memory_key("other")) == []

    async def test_a_replacing_write_sets_the_whole_memory(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        store, key = stores(actor_id), memory_key("settled")
        await store.append(replace(appending(0, 1), memories=(Remembered(key, ("old",), 5),)))
        ids = tuple(f"o{n}" for n in range(2500))  # more than one RPUSH's worth in Redis
        whole = Remembered(key, ids, 2400, replace=True)
        await store.append(replace(appending(1, 1), memories=(whole,)))
        assert await store.read_memory(key) == list(ids[-2400:])

    async def test_a_refused_or_duplicate_append_adds_nothing_to_a_memory(
        self, stores: StoreOf, actor_id: str
    ) -> None:
        store, key = stores(actor_id), memory_key("settled")
        won = appending(0, 1, message_id="m-mem")
        await store.append(replace(won, memories=(Remembered(key, ("won",), 5),)))
        stale = replace(appending(0, 1), memories=(Remembered(key, ("stale",), 5),))
        with pytest.raises(ConcurrencyError):
            await stores(actor_id).append(stale)
        again = appending(1, 1, message_id="m-mem")
        duplicate = replace(again, memories=(Remembered(key, ("dup",), 5, replace=True),))
        assert await stores(actor_id).append(duplicate) == b'{"result":1}'
        assert await stores(actor_id).read_memory(key) == ["won"]
