"""What the metrics cost an actor command, in one process: a ratio, not a threshold.

    python -m bench.metrics [--commands N] [--rounds R]

Runs the same order sagas (Place, two reservations with the payment request, the
confirmation, the shipment) on the real OrderActor over the in-memory store, once with
the actor host's metrics (build_actor_metrics: counters, the outbox gauge, the saga
watcher's histograms) and once with metrics whose children do nothing, alternating
rounds, and prints the best time of each and their ratio. No cluster needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from actors.order.actor import OrderActor
from actors.toolkit.actor import ActorDeps
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.metrics import ActorMetrics, ActorTypeMetrics, CommitWatcher, OutboxMetrics
from actors.toolkit.store import InMemoryStores
from actors.toolkit.testing import activate
from actors.watchers import build_actor_metrics

LINES = [
    {"sku": "tea", "quantity": 1, "unit_price": 100},
    {"sku": "mug", "quantity": 1, "unit_price": 9},
]


class _Nothing:
    def inc(self, amount: float = 1) -> None: ...

    def observe(self, amount: float) -> None: ...

    def labels(self, *values: str) -> _Nothing:
        return self

    def committed(self, *args: Any) -> None: ...


class NoMetrics(ActorMetrics):
    """Metrics whose every child does nothing: the baseline."""

    _NOTHING: Any = _Nothing()
    _CHILDREN = ActorTypeMetrics(_NOTHING, _NOTHING, _NOTHING, OutboxMetrics(_NOTHING, _NOTHING))

    def of(self, actor_type: str) -> ActorTypeMetrics:
        return self._CHILDREN

    def watcher(self, actor_type: str) -> CommitWatcher:
        watcher: CommitWatcher = self._NOTHING
        return watcher


class Dropped:
    """Accepts every publish (the cost under test is the actor's, not a transport's)."""

    async def publish(
        self, topic: str, envelopes: Sequence[EventEnvelope], *, traceparent: str = ""
    ) -> None:
        return None


async def _sagas(metrics: ActorMetrics, count: int) -> float:
    deps = ActorDeps(publisher=Dropped(), store=InMemoryStores(), metrics=metrics)
    place = json.dumps({"customer_id": "c-1", "lines": LINES}).encode()
    started = time.perf_counter()
    for n in range(count):
        order = activate(OrderActor, f"ord-{n}", deps)
        await order.invoke("Place", place)
        for sku in ("tea", "mug"):
            await order.invoke("OnStockReserved", json.dumps({"sku": sku}).encode())
        await order.invoke("OnPaymentAuthorized", b"{}")
        await order.invoke("OnShipmentDispatched", b'{"shipment_id": "s-1"}')
    return time.perf_counter() - started


async def main(commands: int, rounds: int) -> None:
    sagas = max(1, commands // 5)
    with_metrics: list[float] = []
    without: list[float] = []
    await _sagas(NoMetrics(), sagas)  # warm up
    for n in range(rounds):  # alternate which goes first
        for on in (n % 2 == 0, n % 2 == 1):
            metrics = build_actor_metrics() if on else NoMetrics()
            (with_metrics if on else without).append(await _sagas(metrics, sagas))
    best_on, best_off = min(with_metrics), min(without)
    per_command_us = (best_on - best_off) / (sagas * 5) * 1e6
    print(f"{sagas * 5} commands ({sagas} sagas) x {rounds} rounds, best round:")
    print(f"  without metrics {best_off * 1000:.1f} ms, with {best_on * 1000:.1f} ms")
    print(f"  ratio with/without {best_on / best_off:.3f} ({per_command_us:+.1f} us a command)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.commands, args.rounds))
