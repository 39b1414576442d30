"""Actor command throughput and latency: through the gateway, and straight through daprd.

    python -m bench.commands [--gateway URL] [--dapr URL] [--duration S] [--concurrency N]

Prints req/s and p50/p99 for: a wallet deposit through the gateway (HTTP API -> gateway
daprd -> placement-routed actor host -> state transaction + publish), the same command
through daprd's actor API, and BeaconActor.Touch (a plain SDK actor doing one state
write, no event log, no publish) as the bare-SDK baseline. Targets (ARCHITECTURE.md):
gateway >= 800 req/s with p99 <= 25 ms; the toolkit adds <= 10 % over the bare actor.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import aiohttp

from bench.load import run

IDS = 512  # spread the load over many actors (turn-based: one id is one queue)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--dapr", default="http://127.0.0.1:3500")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    return parser.parse_args()


async def main() -> None:
    args = _args()
    tag = uuid.uuid4().hex[:8]

    async def gateway_deposit(session: aiohttp.ClientSession, n: int) -> bool:
        url = f"{args.gateway}/wallets/bench-{tag}-{n % IDS}/deposit"
        async with session.post(url, json={"amount": 1}) as resp:
            await resp.read()
            return resp.status == 200

    async def dapr_deposit(session: aiohttp.ClientSession, n: int) -> bool:
        url = f"{args.dapr}/v1.0/actors/WalletActor/bench-{tag}-d{n % IDS}/method/Deposit"
        async with session.post(url, json={"amount": 1}) as resp:
            body = await resp.json(content_type=None)
            return resp.status == 200 and body.get("ok") is True

    async def bare_touch(session: aiohttp.ClientSession, n: int) -> bool:
        url = f"{args.dapr}/v1.0/actors/BeaconActor/bench-{tag}-b{n % IDS}/method/Touch"
        async with session.post(url, json={}) as resp:
            await resp.read()
            return resp.status == 200

    print(f"{args.concurrency} workers, {args.duration:.0f} s each, {IDS} actor ids")
    for label, request in (
        ("POST /wallets/{id}/deposit (gateway)", gateway_deposit),
        ("WalletActor.Deposit (daprd actor API)", dapr_deposit),
        ("BeaconActor.Touch (bare SDK actor)", bare_touch),
    ):
        stats = await run(request, concurrency=args.concurrency, duration=args.duration)
        print(stats.line(label), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
