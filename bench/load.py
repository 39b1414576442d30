"""A small closed-loop load generator: N workers, a duration, latency percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    def line(self, label: str) -> str:
        rate = len(self.latencies) / self.elapsed if self.elapsed else 0.0
        return (
            f"{label:<42} {rate:8.0f} req/s  p50 {self.percentile(0.5):6.1f} ms  "
            f"p99 {self.percentile(0.99):6.1f} ms  errors {self.errors}  "
            f"(n={len(self.latencies)})"
        )


Request = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


async def run(
    request: Request,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    opened: Callable[[], None] | None = None,
) -> Stats:
    """Call `request(session, n)` from `concurrency` workers for `duration` seconds;
    `opened` is called when the measured window opens (after the warm-up)."""
    stats = Stats()
    # idle connections closed before uvicorn's 5 s keep-alive does, so none is reused stale
    connector = aiohttp.TCPConnector(limit=concurrency * 2, keepalive_timeout=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        counter = iter(range(10**12))
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + duration

        async def worker() -> None:
            while (now := time.perf_counter()) < stop:
                ok = await request(session, next(counter))
                done = time.perf_counter()
                if now >= measure_from:
                    if ok:
                        stats.latencies.append(done - now)
                    else:
                        stats.errors += 1

        async def opening() -> None:
            if opened is not None:
                await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
                opened()

        await asyncio.gather(opening(), *(worker() for _ in range(concurrency)))
        stats.elapsed = time.perf_counter() - measure_from
    return stats
