"""What projecting an event costs the projector's Python process, measured in process.

    python -m bench.project [--orders N] [--rounds R] [--batch B]
    python -m bench.project --redis [--calls N] [--rounds R] [--batch B]

Builds the projector as production does (apps.projector.main.create_app, its lifespan
included, with the `dapr` feed mode so that no feed task starts on its own) and its stream
feed as the lifespan would (actors.toolkit.batchfeed.StreamFeed over its own bytes
client, deciding with apps.projector.events.decide_stream_entries), against a real
redis-server this script starts on 127.0.0.1:12280 (and stops at exit).

The events are a saga's, as the actor hosts write them (actors.toolkit.streams: the
CloudEvent of the envelope's JSON under `data`, XADDed to the topic's stream): orders of
two lines over 16 SKUs and 64 funded wallets, decided by the real pure deciders, several
orders in flight at once. Every read gets `--batch` new entries (at 30 orders/s the
feed's 20 ms linger gathers about 10); the linger itself is set to 0 here (a wait costs
no CPU). Only `StreamFeed.read_once` (the read sent with the previous batch's XACKs, the
batch projected: one HGETALL pipeline and one EVALSHA pipeline) is timed, never the XADD
that prepares its entries.

`--redis`: the Redis client alone, on the calls a batch sends: CPU per pipeline of
`--batch` EVALSHA of the projector's apply script (its real arguments: an order row's
writes) and per single EVALSHA. The script's pointer check fails at once (nothing is
written): only the client's work varies.

Only this process's CPU is counted (time.process_time), so Redis is not in the figures.
Prints the median over `--rounds` rounds (after one unmeasured round). The machine is
shared and noisy: compare interleaved runs, never one round. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from actors import catalog
from actors.inventory import model as inventory
from actors.order import saga as order
from actors.order.model import Line
from actors.toolkit.batchfeed import StreamFeed
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.redis_connection import redis_client
from actors.toolkit.streamfeed import FEED_DAPR, FeedSettings
from actors.toolkit.streams import cloud_event
from actors.wallet import model as wallet
from bench.turn import LOOPBACK, ASGIApp, _Lifespan, redis_server

REDIS_PORT = 12280
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SKUS = 16
WALLETS = 64
IN_FLIGHT = 8  # orders whose steps interleave on the streams


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=150, help="per round (~14 events each)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=10, help="entries per read / EVALSHAs")
    parser.add_argument("--redis", action="store_true", help="the Redis client alone")
    parser.add_argument("--calls", type=int, default=2000, help="--redis: pipelines per round")
    return parser.parse_args()


# --- the events ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Aggregate:
    """One actor's history, decided by its real pure decider."""

    aggregate_type: str
    aggregate_id: str
    decide: Callable[[Any, Any], list[Event]]
    evolve: Callable[[Any, Any], Any]
    state: Any
    version: int = 0

    def handle(self, command: Command, clock: Callable[[], dt.datetime]) -> list[EventEnvelope]:
        envelopes = []
        for event in self.decide(self.state, command):
            self.state = self.evolve(self.state, event)
            self.version += 1
            envelopes.append(
                EventEnvelope.wrap(
                    event,
                    aggregate_type=self.aggregate_type,
                    aggregate_id=self.aggregate_id,
                    aggregate_version=self.version,
                    correlation_id=self.aggregate_id,
                    causation_id=f"msg-{self.aggregate_id}-{self.version}",
                    traceparent=TRACEPARENT,
                    occurred_at=clock(),
                )
            )
        return envelopes


class _Saga:
    """Orders through reserve, authorize, confirm, ship, commit, capture."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.now = dt.datetime.now(dt.UTC)
        self.stock = {
            f"sku-{n}": _Aggregate(
                catalog.INVENTORY_ACTOR,
                f"{tag}-sku-{n}",
                inventory.decide,
                inventory.evolve,
                inventory.initial_state(),
            )
            for n in range(SKUS)
        }
        self.wallets = [
            _Aggregate(
                catalog.WALLET_ACTOR,
                f"{tag}-cust-{n}",
                wallet.decide,
                wallet.evolve,
                wallet.initial_state(),
            )
            for n in range(WALLETS)
        ]
        self.orders = 0

    def clock(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=2)
        return self.now

    def opening(self) -> list[tuple[str, EventEnvelope]]:
        """Every SKU restocked, every wallet funded."""
        events = []
        for sku in self.stock.values():
            restock = inventory.Restock(sku=sku.aggregate_id, quantity=900_000)
            events += [(catalog.INVENTORY, e) for e in sku.handle(restock, self.clock)]
        for account in self.wallets:
            deposit = wallet.Deposit(amount=900_000)
            events += [(catalog.WALLET, e) for e in account.handle(deposit, self.clock)]
        return events

    def steps(self) -> list[list[tuple[str, EventEnvelope]]]:
        """One order's events, step by step (a step's events appear together)."""
        n, self.orders = self.orders, self.orders + 1
        skus = [self.stock[f"sku-{(n * 2 + k) % SKUS}"] for k in range(2)]
        account = self.wallets[n % WALLETS]
        placed = _Aggregate(
            catalog.ORDER_ACTOR,
            f"{self.tag}-ord-{n}",
            order.decide,
            order.evolve,
            order.initial_state(),
        )
        lines = tuple(Line(sku=s.aggregate_id, quantity=1, unit_price=250) for s in skus)
        oid = placed.aggregate_id

        def on(topic: str, aggregate: _Aggregate, command: Command) -> list[tuple[str, Any]]:
            return [(topic, e) for e in aggregate.handle(command, self.clock)]

        place = order.Place(customer_id=account.aggregate_id, lines=lines)
        amount = sum(line.quantity * line.unit_price for line in lines)
        return [
            on(catalog.ORDERS, placed, place),
            [
                item
                for s in skus
                for item in on(
                    catalog.INVENTORY,
                    s,
                    inventory.Reserve(sku=s.aggregate_id, order_id=oid, quantity=1),
                )
            ],
            [
                item
                for s in skus
                for item in on(
                    catalog.ORDERS, placed, order.StockReservedForOrder(sku=s.aggregate_id)
                )
            ],
            on(catalog.WALLET, account, wallet.Authorize(order_id=oid, amount=amount)),
            on(catalog.ORDERS, placed, order.PaymentAuthorizedForOrder()),
            on(catalog.ORDERS, placed, order.ShipmentDispatched(shipment_id=f"shp-{oid}")),
            [
                item
                for s in skus
                for item in on(
                    catalog.INVENTORY, s, inventory.Commit(sku=s.aggregate_id, order_id=oid)
                )
            ],
            on(catalog.WALLET, account, wallet.Capture(order_id=oid)),
        ]

    def round(self, orders: int) -> list[tuple[str, EventEnvelope]]:
        """`orders` orders, IN_FLIGHT at a time, their steps interleaved."""
        events: list[tuple[str, EventEnvelope]] = []
        for first in range(0, orders, IN_FLIGHT):
            flights = [self.steps() for _ in range(min(IN_FLIGHT, orders - first))]
            for step in range(max(len(f) for f in flights)):
                for flight in flights:
                    events += flight[step] if step < len(flight) else []
        return events


def entry_of(topic: str, envelope: EventEnvelope) -> bytes:
    """The stream entry's `data`, as the actor hosts' append writes it."""
    document = envelope.model_dump_json().encode()
    return cloud_event(
        envelope,
        document,
        topic=topic,
        pubsub=catalog.PUBSUB,
        source="actor-host",
        traceparent=TRACEPARENT,
    )


# --- the projector path -----------------------------------------------------------------------


async def _project(args: argparse.Namespace, host: str) -> list[float]:
    from apps.projector.main import Settings, create_app, projector_feed

    app: ASGIApp = create_app(Settings(redis_host=host, feed=FEED_DAPR))
    lifespan = _Lifespan(app)
    await lifespan.start()
    state = app.state  # type: ignore[attr-defined]
    raw = redis_client(host, max_connections=4, decode_responses=False)  # the feed's own client
    producer = Redis(host=LOOPBACK, port=REDIS_PORT)

    feed = projector_feed(raw, state, FeedSettings(linger_ms=0, block_ms=1))
    figures: list[float] = []
    try:
        await feed.ensure_groups()
        saga = _Saga(f"b{int(time.time())}")
        await _feed(feed, producer, saga.opening(), args.batch)
        for r in range(-1, args.rounds):  # round -1: the warm-up, not counted
            events = saga.round(args.orders)
            spent = await _feed(feed, producer, events, args.batch)
            if r >= 0:
                figures.append(spent / len(events) * 1e6)
                print(f"round {r + 1}: {figures[-1]:.0f} µs per event", file=sys.stderr)
        stats = state.stats.as_dict(now=dt.datetime.now(dt.UTC))
        if stats["events"]["retried"] or stats["events"]["dropped"]:
            raise RuntimeError(f"events not applied: {stats['events']}")
    finally:
        await feed.aclose()
        await producer.aclose()
        await raw.aclose()
        await lifespan.stop()
    return figures


async def _feed(
    feed: StreamFeed, producer: Redis, events: list[tuple[str, EventEnvelope]], batch: int
) -> float:
    """CPU seconds of the feed's reads (each deciding `batch` fresh entries) over `events`."""
    entries = [(topic, entry_of(topic, envelope)) for topic, envelope in events]
    spent = 0.0
    for first in range(0, len(entries), batch):
        async with producer.pipeline(transaction=False) as pipe:
            for topic, data in entries[first : first + batch]:
                pipe.xadd(topic, {"data": data})
            await pipe.execute()
        start = time.process_time()
        decided = await feed.read_once()
        spent += time.process_time() - start
        if decided != len(entries[first : first + batch]):
            raise RuntimeError(f"read {decided} entries, expected {batch}")
    start = time.process_time()
    await feed.flush_acks()
    return spent + time.process_time() - start


# --- the Redis client alone --------------------------------------------------------------------


async def _client(args: argparse.Namespace, host: str) -> dict[str, list[float]]:
    from apps.projector.apply import APPLY, ApplyArgs
    from apps.projector.batch import fold_each, groups_of
    from readmodels.keys import Layout

    client = redis_client(host)
    layout = Layout()
    saga = _Saga("client")
    saga.opening()
    envelopes = [envelope for step in saga.steps() for topic, envelope in step if topic == "orders"]
    gen = layout.generation("g0")
    [group] = groups_of(envelopes)
    folded = fold_each([gen], [{}], group)
    call = ApplyArgs(layout).args(
        folded.writes, pointers=("no-such-generation", ""), applied_at=dt.datetime.now(dt.UTC)
    )
    sha = await client.script_load(APPLY)

    async def pipeline() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(args.batch):
                pipe.evalsha(sha, 0, *call)
            await pipe.execute()

    async def single() -> None:
        await client.evalsha(sha, 0, *call)

    kinds = {"pipeline": pipeline, "evalsha": single}
    figures: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for r in range(-1, args.rounds):
            for kind in kinds if r % 2 == 0 else reversed(kinds):
                start = time.process_time()
                for _ in range(args.calls):
                    await kinds[kind]()
                if r >= 0:
                    figures[kind].append((time.process_time() - start) / args.calls * 1e6)
    finally:
        await client.aclose()
    print(f"  (one EVALSHA: {len(call) + 3} arguments)", file=sys.stderr)
    return figures


def _report(title: str, figures: dict[str, list[float]]) -> None:
    print(title)
    for kind, values in figures.items():
        median = statistics.median(values)
        print(f"  {kind:10} {median:7.1f} µs   ({min(values):.1f}-{max(values):.1f})")


def main() -> None:
    args = _args()
    import uvloop

    host = f"{LOOPBACK}:{REDIS_PORT}"
    with redis_server(REDIS_PORT):
        if args.redis:
            figures = uvloop.run(_client(args, host))
            _report(
                f"redis-py CPU per call, in process ({args.rounds} rounds x {args.calls}; "
                f"pipeline = {args.batch} EVALSHA; median, min-max)",
                figures,
            )
            return
        per_event = uvloop.run(_project(args, host))
    _report(
        f"projector CPU per event, in process ({args.rounds} rounds x {args.orders} orders, "
        f"{args.batch} entries per read; median, min-max)",
        {"event": per_event},
    )


if __name__ == "__main__":
    main()
