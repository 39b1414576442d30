"""The deadline sweeper: its reminder, and a sweep over the real orders (in-memory sidecar)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dapr.actor.runtime.mock_actor import MockActor

from actors import catalog
from actors.order.deadlines import (
    FAILED,
    SHARDS,
    SWEEP_LIMIT,
    SWEEP_REMINDER,
    DeadlineSweeper,
    SweeperDeps,
    index_key,
    shard_of,
    start_sweepers,
    sweep,
    sweep_period,
)
from actors.toolkit.client import ActorClient
from actors.toolkit.store import InMemoryStores
from actors.toolkit.testing import InMemorySidecar, daprd_error
from actors.watchers import build_actor_metrics
from tests.actors.doubles import ManualClock
from tests.metrics_text import scrape, value

PLACE = {"customer_id": "c-1", "lines": [{"sku": "jam", "quantity": 1, "unit_price": 1}]}


def sweeper(shard: int, deps: SweeperDeps) -> DeadlineSweeper:
    class Mocked(MockActor, DeadlineSweeper):
        def __init__(self) -> None:
            MockActor.__init__(self, str(shard), None)
            self._setup(deps)

    return Mocked()


def reminders(actor: DeadlineSweeper) -> dict[str, Any]:
    return actor._state_manager._mock_reminders  # type: ignore[attr-defined,no-any-return]


def test_the_sweep_period_is_a_quarter_of_the_shortest_deadline_within_1_to_5_s() -> None:
    assert sweep_period(dt.timedelta(seconds=8)) == dt.timedelta(seconds=2)
    assert sweep_period(dt.timedelta(seconds=30)) == dt.timedelta(seconds=5)
    assert sweep_period(dt.timedelta(seconds=2)) == dt.timedelta(seconds=1)


def test_orders_spread_over_every_shard_and_each_stays_on_its_own() -> None:
    shards = [shard_of(f"ord-{n}") for n in range(400)]
    assert set(shards) == set(range(SHARDS))
    assert shards == [shard_of(f"ord-{n}") for n in range(400)]


async def test_start_registers_the_sweep_reminder_at_the_period() -> None:
    deps = SweeperDeps(InMemoryStores(), ActorClient(InMemorySidecar()), dt.timedelta(seconds=2))
    actor = sweeper(1, deps)
    await actor.start()
    await actor.start()  # again, as every actor host does at start: one reminder
    [(name, reminder)] = reminders(actor).items()
    assert name == SWEEP_REMINDER
    assert (reminder.due_time, reminder.period) == (dt.timedelta(seconds=2),) * 2


async def test_the_sweep_reminder_cancels_the_late_orders_of_its_shard_only() -> None:
    clock = ManualClock()
    sidecar = InMemorySidecar(clock=clock)
    actors = ActorClient(sidecar)
    ids = [f"ord-{n}" for n in range(12)]
    for order_id in ids:
        await actors.invoke("OrderActor", order_id, "Place", PLACE)
    clock.advance(seconds=31)  # nobody reserved jam: every order is past its deadline
    metrics = build_actor_metrics()
    deps = SweeperDeps(
        sidecar.stores,
        actors,
        dt.timedelta(seconds=5),
        clock=clock,
        checks=metrics.deadline_checks,
    )

    await sweeper(0, deps).receive_reminder(SWEEP_REMINDER, b"", dt.timedelta(0), dt.timedelta(0))

    statuses = {i: (await actors.invoke("OrderActor", i, "Get")).result["status"] for i in ids}
    assert {i for i, s in statuses.items() if s == "cancelled"} == {
        i for i in ids if shard_of(i) == 0
    }
    assert sidecar.stores.indexes[index_key(0)] == {}
    shard_0 = sum(1 for i in ids if shard_of(i) == 0)
    found = scrape(metrics.registry)
    assert value(found, "orderflow_deadline_checks_total", result="cancelled") == shard_0


async def test_a_failed_check_leaves_the_order_for_the_next_sweep() -> None:
    clock = ManualClock()
    sidecar = InMemorySidecar(clock=clock)
    actors = ActorClient(sidecar)
    await actors.invoke("OrderActor", "ord-1", "Place", PLACE)
    clock.advance(seconds=31)
    shard = shard_of("ord-1")
    sidecar.fail(times=1, path="/v1.0/actors/OrderActor/")

    first = await sweep(sidecar.stores, actors, shard, clock())
    second = await sweep(sidecar.stores, actors, shard, clock())

    assert (first.due, first.checked, first.failed) == (1, 0, 1)
    assert (second.due, second.checked, second.failed) == (1, 1, 0)
    assert (first.results, second.results) == ((FAILED,), ("cancelled",))
    assert (await actors.invoke("OrderActor", "ord-1", "Get")).result["status"] == "cancelled"


async def test_the_in_memory_due_index_answers_the_earliest_first_up_to_the_limit() -> None:
    stores = InMemoryStores()
    entries = {f"ord-{n}": n for n in range(SWEEP_LIMIT + 5)}
    stores.indexes[index_key(0)] = entries
    assert await stores.due(index_key(0), 10**6, SWEEP_LIMIT) == list(entries)[:SWEEP_LIMIT]
    assert await stores.due(index_key(0), 2, SWEEP_LIMIT) == ["ord-0", "ord-1", "ord-2"]


class Refusing:
    """A transport answering daprd's 500 to the first `refusals` calls, then ok."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.paths: list[str] = []

    async def request(self, method: str, path: str, **_: Any) -> tuple[int, bytes]:
        self.paths.append(path)
        if len(self.paths) <= self.refusals:
            return 500, daprd_error("ERR_ACTOR_INSTANCE_MISSING", "placement not ready")
        return 200, b'{"ok":true,"result":{}}'


async def test_starting_the_sweepers_retries_until_every_shard_answered() -> None:
    transport = Refusing(refusals=SHARDS + 1)  # the whole first round, then one more

    await start_sweepers(ActorClient(transport), delay=0)

    starts = [f"/v1.0/actors/DeadlineSweeper/{shard}/method/Start" for shard in range(SHARDS)]
    assert transport.paths == starts + starts + starts[:1]


def test_the_sweeper_class_is_named_after_its_actor_type() -> None:
    assert DeadlineSweeper.__name__ == catalog.DEADLINE_SWEEPER  # Dapr's type is the class name
