"""A bulk delivery projected as one batch against a real Redis: the rows one-at-a-time
delivery gives, in a constant number of round trips, each event applied once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from actors.inventory import model as inventory
from actors.toolkit.envelope import EventEnvelope, utcnow
from actors.toolkit.redis_multiplex import MultiplexedRedis
from actors.wallet import model as wallet
from apps.projector.generations import Generations
from apps.projector.known import KnownRows
from apps.projector.main import Settings, create_app
from apps.projector.projections import InvalidEventError, Projection
from apps.projector.store import ProjectionStore
from readmodels.keys import Layout
from tests.apps.conftest import running
from tests.apps.histories import (
    cloud_event,
    funded,
    restocked,
    shipped,
    stock_events,
    wallet_events,
)

REDELIVERY = "projector-redelivery"


def forty_events_over_twelve_rows() -> list[EventEnvelope]:
    """4 orders x 5 events, 4 SKUs x 3, 4 wallets x 2, shuffled."""
    events = [e for n in range(4) for e in shipped(f"ord-{n}", f"cust-{n}")]
    for n in range(4):
        restock, reserve = (
            inventory.Restock(sku=f"sku-{n}", quantity=5),
            inventory.Reserve(sku=f"sku-{n}", order_id="ord-x", quantity=4),
        )
        events += stock_events(f"sku-{n}", restock, restock, reserve)
    events += [e for n in range(4) for e in funded(f"cust-{n}", 1_000, hold=300)]
    random.Random(7).shuffle(events)
    return events


def mixed_batch() -> list[EventEnvelope]:
    """Several aggregates; one order's five events out of order with a repeat in between,
    another order's repeat last."""
    ord1, ord2 = shipped("ord-1", "cust-1"), shipped("ord-2", "cust-2")
    stock, wallet = restocked("sku-a", 10, reserve=4), funded("cust-1", 1_000, hold=300)
    return [
        *(ord1[2], ord1[0], ord2[0], stock[1], ord1[0], wallet[0], ord1[1], stock[0]),
        *(ord2[1], wallet[1], ord1[4], ord1[3], ord2[2], ord2[0]),
    ]


async def dump(redis: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under `prefix` but the freshness meta, by suffix, with its content."""
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}*"):
        suffix = key.removeprefix(prefix)
        if suffix == "meta":
            continue
        if await redis.type(key) == "zset":
            found[suffix] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            found[suffix] = await redis.hgetall(key)
    return found


async def one_at_a_time(redis: aioredis.Redis, events: list[EventEnvelope], prefix: str) -> None:
    store = ProjectionStore(redis, layout=Layout(prefix))
    for event in events:
        await store.project_live(event, applied_at=utcnow())


async def calls(redis: aioredis.Redis) -> Counter[str]:
    """Commands run since the last CONFIG RESETSTAT, by name (INFO commandstats)."""
    stats = await redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items()})


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What every client writes to a socket (a command, or a whole pipeline, is one write
    whose replies are then read: a round trip), in round_trips[0]; set it to 0 to count
    from a point on."""
    sent = [0]
    original = AbstractConnection.send_packed_command
    shared_write = MultiplexedRedis._write

    async def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sent[0] += 1
        await original(self, *args, **kwargs)

    def counting_shared(self: MultiplexedRedis, *args: Any) -> Any:
        sent[0] += 1
        return shared_write(self, *args)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    monkeypatch.setattr(MultiplexedRedis, "_write", counting_shared)
    return sent


StoreOf = Callable[..., ProjectionStore]


@pytest.fixture(params=["pool", "shared"])
async def store_of(
    request: pytest.FixtureRequest, redis: aioredis.Redis, redis_port: int
) -> AsyncIterator[StoreOf]:
    """Stores as the projector builds them ("shared": a batch's reads and writes over one
    shared connection, MultiplexedRedis) and as they run over `redis`'s pool alone."""
    if request.param == "pool":
        yield lambda cls=ProjectionStore, **kw: cls(redis, **kw)
        return
    shared = MultiplexedRedis(f"127.0.0.1:{redis_port}", decode=True)
    yield lambda cls=ProjectionStore, **kw: cls(redis, multiplexed=shared, **kw)
    await shared.aclose()


async def warm(store: ProjectionStore) -> None:
    """Connect, read the pointers, load the script: what every later batch finds done."""
    await store.project_live(restocked("sku-warm", 1)[0], applied_at=utcnow())


class Interrupted(ProjectionStore):
    """A store that runs `between` once, before its next apply: after it read (or knew)
    the rows and folded the batch onto them."""

    between: Callable[[], Awaitable[Any]] | None = None

    async def _run_scripts(self, calls: Any) -> list[int | BaseException]:
        if self.between is not None:
            between, self.between = self.between, None
            await between()
        return await super()._run_scripts(calls)


@contextlib.asynccontextmanager
async def projector(redis: aioredis.Redis, prefix: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(Settings(prefix=prefix), redis=redis)) as client:
        yield client


async def deliver_bulk(client: httpx.AsyncClient, topic: str, events: list[Any]) -> list[str]:
    entries = [{"entryId": f"e{n}", "event": cloud_event(e)} for n, e in enumerate(events)]
    body = {"id": "b1", "type": "com.dapr.event.sent.bulk", "topic": topic, "entries": entries}
    resp = await client.post(f"/events/{topic}", json=body)
    assert resp.status_code == 200
    statuses = resp.json()["statuses"]
    assert [s["entryId"] for s in statuses] == [e["entryId"] for e in entries]
    return [s["status"] for s in statuses]


async def events_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    body = (await client.get("/projector/stats")).json()
    return {**body["events"], "lag_samples": body["lag_ms"]["samples"]}


@pytest.mark.parametrize("topic", [REDELIVERY, "orders"])
async def test_a_bulk_delivery_gives_the_read_models_one_at_a_time_delivery_gives(redis, topic):
    events = mixed_batch()

    async with projector(redis, "rm:") as bulk, projector(redis, "seq:") as single:
        statuses = await deliver_bulk(bulk, topic, events)
        for event in events:
            assert (await single.post(f"/events/{topic}", json=cloud_event(event))).json() == {
                "status": "SUCCESS"
            }
        bulk_stats, single_stats = await events_stats(bulk), await events_stats(single)

    assert statuses == ["SUCCESS"] * len(events)
    assert await dump(redis, "rm:g0:") == await dump(redis, "seq:g0:")
    assert await redis.hget("rm:g0:meta", "last_event_at") == await redis.hget(
        "seq:g0:meta", "last_event_at"
    )  # the last event applied, not the last delivered (a repeat)
    assert (await redis.hgetall("rm:g0:order:ord-1"))["status"] == "shipped"
    assert bulk_stats == single_stats
    assert bulk_stats["duplicates"] == 2
    assert bulk_stats["out_of_order"] > 0


@pytest.mark.parametrize("knows", [False, True], ids=["knows-nothing", "wrote-them"])
@pytest.mark.parametrize("rebuilding", [False, True])
async def test_a_bulk_delivery_reads_only_the_rows_it_does_not_know_in_one_round_trip(
    redis, round_trips, rebuilding, knows, store_of
):
    if rebuilding:
        await Generations(redis).begin("g1")
    events, later = forty_events_over_twelve_rows(), later_events()
    writer = store_of()
    await warm(writer)
    await redis.config_resetstat()
    first = await writer.project_batch(events, applied_at=utcnow())  # every row new
    assert (await calls(redis))["hgetall"] == 0
    store = writer if knows else store_of()  # a fresh store: a restarted projector
    await warm(store)
    await redis.config_resetstat()
    round_trips[0] = 0

    results = await store.project_batch(later, applied_at=utcnow())

    # a pipeline of HGETALL (the rows it does not know), then one of EVALSHA
    assert round_trips[0] == (1 if knows else 2)
    ran = await calls(redis)
    generations = 2 if rebuilding else 1
    assert (ran["hgetall"], ran["evalsha"]) == (0 if knows else 8 * generations, 8)
    assert ran["script|exists"] + ran["script|load"] + ran["mget"] + ran["eval"] == 0
    applied = [r.applied for r in [*first, *results] if isinstance(r, Projection)]
    assert applied == [1] * (len(events) + len(later))
    assert await dump(redis, "rm:g0:") == await reference(redis, [*events, *later])
    if rebuilding:
        assert await dump(redis, "rm:g1:") == await dump(redis, "rm:g0:")


def later_events() -> list[EventEnvelope]:
    """What follows forty_events_over_twelve_rows on its eight SKU and wallet rows: one
    more event each (none of them new)."""
    events = []
    for n in range(4):
        sku, customer = f"sku-{n}", f"cust-{n}"
        restock = inventory.Restock(sku=sku, quantity=5)
        reserve = inventory.Reserve(sku=sku, order_id="ord-x", quantity=4)
        more = inventory.Restock(sku=sku, quantity=1)
        done = len(stock_events(sku, restock, restock, reserve))
        events += stock_events(sku, restock, restock, reserve, more)[done:]
        first = [wallet.Deposit(amount=1_000), wallet.Authorize(order_id="ord-x", amount=300)]
        done = len(wallet_events(customer, *first))
        events += wallet_events(customer, *first, wallet.Deposit(amount=5))[done:]
    return events


async def reference(redis: aioredis.Redis, events: list[EventEnvelope]) -> dict[str, Any]:
    """The read models the same events give delivered one at a time (the warm-up too)."""
    await one_at_a_time(redis, [restocked("sku-warm", 1)[0], *events], "ref:")
    return await dump(redis, "ref:g0:")


async def test_a_script_cache_flushed_under_the_store_costs_one_load_and_one_resend(
    redis, round_trips, store_of
):
    store = store_of()
    await warm(store)
    await redis.script_flush()
    events = forty_events_over_twelve_rows()
    round_trips[0] = 0

    results = await store.project_batch(events, applied_at=utcnow())

    assert round_trips[0] == 3  # EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA again (rows new)
    assert all(isinstance(r, Projection) and r.applied == 1 for r in results)
    assert await dump(redis, "rm:g0:") == await reference(redis, events)


async def test_a_row_another_writer_changed_after_the_read_goes_round_again_and_lands_once(
    redis, store_of
):
    events = forty_events_over_twelve_rows()
    placed = next(e for e in events if e.aggregate_id == "ord-2" and e.aggregate_version == 1)
    other = ProjectionStore(redis)  # another projector: its own locks

    async def write_ord_2() -> None:
        await other.project_live(placed, applied_at=utcnow())

    store = store_of(Interrupted)
    await warm(store)
    store.between = write_ord_2
    await redis.config_resetstat()

    results = await store.project_batch(events, applied_at=utcnow())

    ran = await calls(redis)
    # + the other's, + ord-2 again: taken to be new, then read once its check failed
    assert (ran["evalsha"], ran["hgetall"]) == (12 + 1 + 1, 1)
    again = results[events.index(placed)]  # applied by the other writer: here a duplicate
    assert isinstance(again, Projection)
    assert (again.applied, again.duplicates) == (0, 1)
    assert sum(r.applied for r in results if isinstance(r, Projection)) == 39
    assert await dump(redis, "rm:g0:") == await reference(redis, events)


async def begin_rebuild(redis: aioredis.Redis) -> None:
    await Generations(redis).begin("g1")


async def switch_to_g1(redis: aioredis.Redis) -> None:
    await redis.set("rm:active", "g1")


@pytest.mark.parametrize(
    ("move", "written"),
    [(begin_rebuild, ["g0", "g1"]), (switch_to_g1, ["g1"])],
    ids=["rebuild-begins", "switch"],
)
async def test_a_generation_move_after_the_read_sends_the_batch_round_again(
    redis, move, written, store_of
):
    events = forty_events_over_twelve_rows()
    store = store_of(Interrupted)
    await warm(store)
    store.between = lambda: move(redis)
    await redis.config_resetstat()

    results = await store.project_batch(events, applied_at=utcnow())

    ran = await calls(redis)
    assert ran["evalsha"] == 12 + 12  # every row answered -1 once
    assert ran["mget"] == 1  # the pointers read again, once for the whole batch
    assert all(isinstance(r, Projection) and r.applied == 1 for r in results)
    expected = without_warm_up(await reference(redis, events))
    for name in written:
        assert without_warm_up(await dump(redis, f"rm:{name}:")) == expected
    if "g0" not in written:
        assert without_warm_up(await dump(redis, "rm:g0:")) == {}


def without_warm_up(dumped: dict[str, Any]) -> dict[str, Any]:
    """The keys but the warm-up row's (its stock:low entry, counters have none)."""
    found = {key: value for key, value in dumped.items() if "sku-warm" not in key}
    if "stock:low" in found:
        found["stock:low"] = [entry for entry in found["stock:low"] if entry[0] != "sku-warm"]
        found = {k: v for k, v in found.items() if v != []}
    return found


async def test_an_event_that_cannot_be_projected_fails_alone_in_its_row(redis, store_of):
    events = shipped("ord-1", "cust-1")
    broken = events[1].model_copy(update={"payload": {}})  # line_reserved without its sku
    store = store_of()

    results = await store.project_batch([events[0], broken, *events[2:]], applied_at=utcnow())

    assert isinstance(results[1], InvalidEventError)
    assert [r.applied for r in results if isinstance(r, Projection)] == [1, 1, 1, 1]
    row = await redis.hgetall("rm:g0:order:ord-1")
    assert (row["aggregate_version"], row["applied_above"], row["status"]) == (
        "1",
        "[3,4,5]",
        "shipped",
    )


async def test_redis_failing_the_apply_fails_the_rows_it_would_write_and_no_other(redis):
    done, fresh = restocked("sku-done", 5, reserve=2), restocked("sku-new", 5, reserve=2)
    await one_at_a_time(redis, done, "rm:")

    class Unreachable(ProjectionStore):
        async def _evalsha(self, calls: Any) -> list[Any]:
            raise RedisConnectionError("connection reset")

    # done's second event alone: its row is read (not new), the event found applied
    results = await Unreachable(redis).project_batch([done[1], *fresh], applied_at=utcnow())

    assert [type(r) for r in results] == [Projection, RedisConnectionError, RedisConnectionError]
    assert [r.duplicates for r in results[:1] if isinstance(r, Projection)] == [1]
    assert await redis.exists("rm:g0:stock:sku-new") == 0


async def test_a_batch_answers_each_entry_as_its_own_delivery_would(redis):
    good, cut = shipped("ord-1", "cust-1"), shipped("ord-bad", "cust-1")
    await redis.set("rm:g0:order:ord-bad", "not a hash")  # HGETALL: WRONGTYPE
    missing = good[1].model_dump(mode="json")
    del missing["payload"]["sku"]
    entries: list[Any] = [
        "[1, 2]",  # not an envelope
        good[0].model_copy(update={"type": "order.audited"}),  # feeds no read model
        cut[0],
        good[0],
        missing,
        good[2].model_copy(update={"schema_version": 99}),  # newer than this projector
        cut[1],
        good[0],  # again, in the same batch
    ]

    async with projector(redis, "rm:") as client:
        statuses = await deliver_bulk(client, "orders", entries)
        counts = await events_stats(client)

    assert statuses == [
        "SUCCESS",
        "SUCCESS",
        "RETRY",
        "SUCCESS",
        "SUCCESS",
        "RETRY",
        "RETRY",
        "SUCCESS",
    ]
    assert (counts["applied"], counts["duplicates"], counts["ignored"]) == (1, 1, 1)
    assert (counts["dropped"], counts["retried"]) == (2, 3)
    assert (await redis.hgetall("rm:g0:order:ord-1"))["status"] == "reserving"
    assert await redis.llen("rm:rejected") == 2


async def test_overlapping_batches_and_single_events_queue_on_the_row_locks(redis, store_of):
    hot = stock_events("hot", *(inventory.Restock(sku="hot", quantity=n + 1) for n in range(30)))
    cold = [
        stock_events(f"cold-{n}", *(inventory.Restock(sku=f"cold-{n}", quantity=1),) * 5)
        for n in range(5)
    ]
    # five batches, each of 5 hot events and one event of every cold row: 6 rows each
    batches = [[*hot[5 * k : 5 * k + 5], *(row[k] for row in cold)] for k in range(5)]
    store = store_of()
    await warm(store)
    await redis.config_resetstat()

    async with asyncio.timeout(10):
        await asyncio.gather(
            *(store.project_batch(batch, applied_at=utcnow()) for batch in batches),
            *(store.project_live(event, applied_at=utcnow()) for event in hot[25:]),
        )

    assert (await calls(redis))["evalsha"] == 5 * 6 + 5  # no check failed: none went round
    row = await redis.hgetall("rm:g0:stock:hot")
    assert (row["on_hand"], row["aggregate_version"], row["applied_above"]) == ("465", "30", "[]")
    assert {(await redis.hgetall(f"rm:g0:stock:cold-{n}"))["on_hand"] for n in range(5)} == {"5"}


# --- rows known without reading them (apps.projector.known) -----------------------------------


async def test_a_known_row_another_writer_moved_on_is_read_again_and_each_event_lands_once(
    redis, store_of
):
    store, other = store_of(), ProjectionStore(redis)  # another projector: its own memory
    events, later = forty_events_over_twelve_rows(), later_events()
    await warm(store)
    await store.project_batch(events, applied_at=utcnow())  # store knows every row now
    moved = next(e for e in later if e.aggregate_id == "sku-0")
    await other.project_live(moved, applied_at=utcnow())
    await redis.config_resetstat()

    results = await store.project_batch(later, applied_at=utcnow())

    ran = await calls(redis)
    assert ran["hgetall"] == 1  # sku-0's row, once its check failed
    again = results[later.index(moved)]
    assert isinstance(again, Projection)
    assert (again.applied, again.duplicates) == (0, 1)
    assert sum(r.applied for r in results if isinstance(r, Projection)) == len(later) - 1
    assert await dump(redis, "rm:g0:") == await reference(redis, [*events, *later])


async def test_a_redelivery_to_a_projector_that_knows_nothing_finds_every_event_applied(
    redis, store_of
):
    events = forty_events_over_twelve_rows()
    await warm(store_of())
    await store_of().project_batch(events, applied_at=utcnow())
    before = await dump(redis, "rm:g0:")
    restarted = store_of()  # every row taken to be new: each guess fails its check

    results = await restarted.project_batch(events, applied_at=utcnow())

    assert all(isinstance(r, Projection) and r.duplicates == 1 for r in results)
    assert await dump(redis, "rm:g0:") == before


async def test_an_event_found_applied_only_in_memory_is_checked_against_redis(redis, store_of):
    """A row lost under the projector (deleted; an everysec Redis that crashed): the
    redelivered event is applied again, not taken for a repeat from what it remembers."""
    store = store_of()
    await warm(store)
    later = later_events()
    await store.project_batch([*forty_events_over_twelve_rows(), *later], applied_at=utcnow())
    await redis.delete("rm:g0:wallet:cust-1")
    redelivered = [e for e in forty_events_over_twelve_rows() if e.aggregate_id == "cust-1"]

    results = await store.project_batch(redelivered, applied_at=utcnow())

    assert [r.applied for r in results if isinstance(r, Projection)] == [1] * len(redelivered)
    assert (await redis.hgetall("rm:g0:wallet:cust-1"))["aggregate_version"] == str(
        len(redelivered)
    )


def test_known_rows_let_the_least_recently_used_go_past_their_capacity() -> None:
    known = KnownRows(capacity=2)
    known.put("a", {"v": "1"})
    known.put("b", {"v": "2"})
    assert known.get("a") == {"v": "1"}  # a is now the most recent

    known.put("c", {"v": "3"})
    known.forget(["c", "nothing"])

    assert (known.get("a"), known.get("b"), known.get("c"), len(known)) == (
        {"v": "1"},
        None,
        None,
        1,
    )
    with pytest.raises(ValueError, match="at least 1"):
        KnownRows(capacity=0)
