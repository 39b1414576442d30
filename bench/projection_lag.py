"""Drive orders through the gateway at a target rate and print the projection lag.

    python -m bench.projection_lag [--rate 50] [--seconds 20] [--gateway http://127.0.0.1:8000]
        [--projector http://127.0.0.1:8300] [--skus 20] [--customers 50]

Funds customers and stocks SKUs first, then POSTs /orders open-loop at --rate for --seconds,
waits until the projector has applied what the run caused, and prints figures from
GET /projector/stats (lag = applied_at - occurred_at of each event: p50/p99 over the
events of the run) plus the gateway's own POST latency. Prints, never asserts.
Target (ARCHITECTURE.md): projection lag p99 <= 100 ms at 150 orders/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--projector", default="http://127.0.0.1:8300")
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skus", type=int, default=20)
    parser.add_argument("--customers", type=int, default=50)
    return parser.parse_args()


async def stats(client: httpx.AsyncClient, projector: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"{projector}/projector/stats")).json()
    return body


async def prepare(client: httpx.AsyncClient, args: argparse.Namespace, run: str) -> None:
    for n in range(args.skus):
        await client.post(f"/inventory/b{n}-{run}/restock", json={"quantity": 1_000_000})
    for n in range(args.customers):
        await client.post(f"/wallets/b{n}-{run}/deposit", json={"amount": 10_000_000_000})


async def place(client: httpx.AsyncClient, args: argparse.Namespace, run: str, n: int) -> float:
    body = {
        "customer_id": f"b{n % args.customers}-{run}",
        "lines": [{"sku": f"b{n % args.skus}-{run}", "quantity": 1, "unit_price": 100}],
    }
    started = time.perf_counter()
    resp = await client.post("/orders", json=body, headers={"Idempotency-Key": f"{run}-{n}"})
    resp.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def drive(client: httpx.AsyncClient, args: argparse.Namespace, run: str) -> list[float]:
    """Open loop: one order every 1/rate seconds, whatever the answers take."""
    tasks: list[asyncio.Task[float]] = []
    started, total = time.perf_counter(), int(args.rate * args.seconds)
    for n in range(total):
        await asyncio.sleep(max(0.0, started + n / args.rate - time.perf_counter()))
        tasks.append(asyncio.create_task(place(client, args, run, n)))
    return list(await asyncio.gather(*tasks))


async def settle(client: httpx.AsyncClient, projector: str) -> dict[str, Any]:
    """Wait until the projector applied nothing new for two seconds."""
    last, body = -1, await stats(client, projector)
    while body["events"]["applied"] != last:
        last = body["events"]["applied"]
        await asyncio.sleep(2)
        body = await stats(client, projector)
    return body


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)]


async def main() -> None:
    args = parse_args()
    run = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=args.gateway, timeout=60, limits=limits) as client:
        await prepare(client, args, run)
        before = await settle(client, args.projector)
        await client.post(f"{args.projector}/projector/stats/reset")
        print(f"placing {int(args.rate * args.seconds)} orders at {args.rate}/s ...", flush=True)
        started = time.perf_counter()
        latencies = await drive(client, args, run)
        placed_s = time.perf_counter() - started
        after = await settle(client, args.projector)
    applied = after["events"]["applied"] - before["events"]["applied"]
    lag = after["lag_ms"]
    print(f"orders: {len(latencies)} in {placed_s:.1f}s ({len(latencies) / placed_s:.1f}/s)")
    print(
        f"POST /orders ms: p50 {pct(latencies, 0.5):.1f}  p99 {pct(latencies, 0.99):.1f}  "
        f"mean {statistics.fmean(latencies):.1f}"
    )
    print(
        f"events applied: {applied}  duplicates: {after['events']['duplicates']}  "
        f"out of order: {after['events']['out_of_order']}"
    )
    print(
        f"projection lag ms over the last {lag['samples']} events: "
        f"p50 {lag['p50']}  p99 {lag['p99']}  max {lag['max']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
