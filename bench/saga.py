"""Order saga throughput and latency (place -> confirmed) at a target rate.

    python -m bench.saga [--gateway URL] [--rate R] [--duration S]

Stocks a few SKUs and funds a few wallets generously, then places orders through the
gateway at `rate` per second for `duration` seconds (open loop), and reads every
order's history: latency is `order.confirmed.occurred_at - order.placed.occurred_at`
(server-side, so the load generator's own scheduling does not count). Prints orders
confirmed per second and p50/p99. Target (ARCHITECTURE.md): >= 150 orders/s, p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid

import aiohttp

SKUS, WALLETS = 16, 64
SETTLED = frozenset({"confirmed", "shipped", "cancelled"})


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--duration", type=float, default=10.0)
    return parser.parse_args()


async def _post(session: aiohttp.ClientSession, url: str, body: object, **headers: str) -> int:
    async with session.post(url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def _seed(session: aiohttp.ClientSession, base: str, tag: str) -> None:
    await asyncio.gather(
        *(
            _post(session, f"{base}/inventory/s{n}-{tag}/restock", {"quantity": 10**6})
            for n in range(SKUS)
        ),
        *(
            _post(session, f"{base}/wallets/w{n}-{tag}/deposit", {"amount": 10**10})
            for n in range(WALLETS)
        ),
    )


async def _place(session: aiohttp.ClientSession, base: str, tag: str, n: int) -> str | None:
    body = {
        "customer_id": f"w{n % WALLETS}-{tag}",
        "lines": [
            {"sku": f"s{(n + k) % SKUS}-{tag}", "quantity": 1, "unit_price": 100} for k in range(2)
        ],
    }
    async with session.post(
        f"{base}/orders", json=body, headers={"Idempotency-Key": f"{tag}-{n}"}
    ) as resp:
        await resp.read()
        return resp.headers.get("location") if resp.status == 202 else None


async def _status(session: aiohttp.ClientSession, base: str, location: str) -> str:
    async with session.get(f"{base}{location}") as resp:
        return str((await resp.json())["status"]) if resp.status == 200 else "unknown"


async def _wait_settled(
    session: aiohttp.ClientSession, base: str, locations: list[str], *, within: float
) -> None:
    """Poll, gently (8 at a time, once a second), until no order is still in progress."""
    gate = asyncio.Semaphore(8)
    pending, deadline = set(locations), time.perf_counter() + within

    async def check(location: str) -> None:
        async with gate:
            # "unknown" (an error answer under overload) is still pending, not settled
            if await _status(session, base, location) in SETTLED:
                pending.discard(location)

    while pending and time.perf_counter() < deadline:
        await asyncio.gather(*(check(loc) for loc in list(pending)))
        if pending:
            await asyncio.sleep(1.0)


async def _latency(session: aiohttp.ClientSession, base: str, location: str) -> float | None:
    async with session.get(f"{base}{location}/history", params={"limit": "100"}) as resp:
        events = (await resp.json())["events"]
    at = {e["type"]: dt.datetime.fromisoformat(e["occurred_at"]) for e in events}
    if "order.confirmed" not in at:
        return None
    return (at["order.confirmed"] - at["order.placed"]).total_seconds() * 1000


async def _latencies(
    session: aiohttp.ClientSession, base: str, locations: list[str]
) -> list[float]:
    gate = asyncio.Semaphore(8)

    async def one(location: str) -> float | None:
        async with gate:
            return await _latency(session, base, location)

    found = await asyncio.gather(*(one(loc) for loc in locations))
    return sorted(ms for ms in found if ms is not None)


async def main() -> None:
    args = _args()
    tag = uuid.uuid4().hex[:8]
    # idle connections closed before uvicorn's 5 s keep-alive does, so none is reused stale
    connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _seed(session, args.gateway, tag)
        total = int(args.rate * args.duration)
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start + n / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_place(session, args.gateway, tag, n)))
        locations = [loc for loc in await asyncio.gather(*tasks) if loc]
        placed_in = time.perf_counter() - start
        await _wait_settled(session, args.gateway, locations, within=120)
        settled_in = time.perf_counter() - start
        latencies = await _latencies(session, args.gateway, locations)
    if not latencies:
        print("no order confirmed")
        return
    p50, p99 = (latencies[min(len(latencies) - 1, int(len(latencies) * q))] for q in (0.5, 0.99))
    print(
        f"placed {len(locations)}/{total} orders in {placed_in:.1f} s "
        f"({len(locations) / placed_in:.0f}/s, offered {args.rate:.0f}/s); "
        f"confirmed {len(latencies)} ({len(latencies) / settled_in:.0f}/s over "
        f"{settled_in:.1f} s); place->confirmed p50 {p50:.0f} ms  p99 {p99:.0f} ms  "
        f"max {latencies[-1]:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
