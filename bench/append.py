"""What the fence costs in Redis: the fenced Lua append against an unconditional write.

    python -m bench.append [--redis HOST:PORT] [--seconds S] [--state-bytes N]

Both write what one command writes (the snapshot, one event key, an inbox entry with
a TTL) to the same Redis, one actor per worker, in the same run:
    unconditional  MULTI / one EVAL per key / EXEC: what daprd's state.redis runs for
                   an actor state transaction (the write path before the fence)
    fenced         one EVALSHA of actors.toolkit.redis_store (version check, key
                   checks, then the same writes)
Prints appends/s and the mean time per append for each, and the ratio fenced/baseline.
Run it against any Redis (`make up` serves one on 6380).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from actors.toolkit.redis_multiplex import MultiplexedRedis
from actors.toolkit.redis_store import RedisStores
from actors.toolkit.store import Append, Item, event_key

# state.redis's per-key script (components-contrib, state/redis): set data, bump version
DAPR_SET = """
local etag = redis.pcall("HGET", KEYS[1], "version");
if type(etag) == "table" then redis.call("DEL", KEYS[1]); end;
redis.call("HSET", KEYS[1], "data", ARGV[2]);
return redis.call("HINCRBY", KEYS[1], "version", 1)
"""
WORKERS = 16


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="127.0.0.1:6380")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--state-bytes", type=int, default=2000, help="snapshot state size")
    return parser.parse_args()


def _docs(version: int, state: str) -> tuple[bytes, bytes, bytes]:
    snapshot = json.dumps({"version": version, "published": version - 1, "state": {"s": state}})
    event = json.dumps({"aggregate_version": version, "payload": {"quantity": 1}})
    return snapshot.encode(), event.encode(), b'{"result":{},"aggregate_version":1}'


async def _unconditional(client: MultiplexedRedis, prefix: str, version: int, state: str) -> None:
    snapshot, event, inbox = _docs(version, state)
    await client.execute_many(
        [
            ("MULTI",),
            ("EVAL", DAPR_SET, 1, prefix + "aggregate", "", snapshot),
            ("EVAL", DAPR_SET, 1, prefix + event_key(version), "", event),
            ("EVAL", DAPR_SET, 1, prefix + f"inbox-{version}", "", inbox),
            ("EXPIRE", prefix + f"inbox-{version}", 600),
            ("EXEC",),
        ]
    )


Write = Callable[[int, int], Awaitable[None]]  # (worker, version)


async def _measure(label: str, write: Write, seconds: float) -> float:
    done = 0

    async def worker(n: int) -> None:
        nonlocal done
        version = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            version += 1
            await write(n, version)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(WORKERS)))
    elapsed = time.perf_counter() - started
    rate = done / elapsed
    print(f"{label:<14} {rate:8.0f} appends/s   {1000 * WORKERS / rate:6.2f} ms per append")
    return rate


async def main() -> None:
    args = _args()
    host, port = args.redis.split(":")
    client = Redis(host=host, port=int(port))  # the clean-up's SCAN
    multiplexed = MultiplexedRedis(args.redis)  # both paths' writes, as the actor host's
    stores = RedisStores(multiplexed, app_id="bench-append")
    state = "x" * args.state_bytes
    tag = uuid.uuid4().hex[:8]

    async def unconditional(worker: int, version: int) -> None:
        await _unconditional(multiplexed, f"bench-append||A||u-{tag}-{worker}||", version, state)

    async def fenced(worker: int, version: int) -> None:
        snapshot, event, inbox = _docs(version, state)
        await stores("A", f"f-{tag}-{worker}").append(
            Append(
                expected_version=version - 1,
                snapshot=snapshot,
                events=(Item(event_key(version), event),),
                inbox=Item(f"inbox-{version}", inbox, dt.timedelta(seconds=600)),
            )
        )

    print(f"{WORKERS} workers, {args.seconds:.0f} s each, snapshot state {args.state_bytes} B")
    try:
        base = await _measure("unconditional", unconditional, args.seconds)
        fence = await _measure("fenced", fenced, args.seconds)
        print(f"fenced / unconditional throughput: {fence / base:.2f}")
    finally:
        keys = [k async for k in client.scan_iter(match=f"bench-append||A||*{tag}*")]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()
        await multiplexed.aclose()


if __name__ == "__main__":
    asyncio.run(main())
