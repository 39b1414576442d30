"""The gateway against the floor of any Python hop: raw daprd, the gateway, a bare forwarder.

    python -m bench.gateway_floor [--rounds 3] [--seconds 8] [--workers 32]

Starts the bench's cluster (bench.harness, port offset 12875, one actor host) and
`bench.hopfloor` (a forwarder that parses, forwards and answers, nothing else) in front
of the gateway's daprd, then runs `WalletActor.Deposit` from `--workers` closed-loop
workers three ways, interleaved round by round so the machine's drift hits each alike:
straight to daprd, through the gateway (`POST /wallets/{id}/deposit`), through the
forwarder. Every way carries the cluster's Dapr API token to daprd (the raw calls in a
header, the gateway and the forwarder from DAPR_API_TOKEN, as the launcher gives it).
The calls to the gateway carry the operator's client key, which it checks as in
production (apps/gateway/auth.py); the forwarder stays bare: no key, no check.
Prints each round, then each way's rate as a ratio to raw daprd's and the CPU µs per
request of every process (utime + stime from /proc, from the first request until the
cluster is quiet again, so the work an answer leaves behind counts). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import uuid
from collections.abc import Sequence

import aiohttp

from bench import drivers, load, procfs
from bench.figures import cpu_ms
from bench.harness import BENCH_PORT_OFFSET, BenchCluster
from cluster.config import ROOT
from cluster.ports import any_free_port, can_bind
from cluster.processes import ManagedProcess, wait_until

WAYS = ("raw daprd", "gateway", "bare forwarder")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_floor", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three ways (3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per way and round (8)")
    parser.add_argument("--workers", type=int, default=32, help="closed-loop workers (32)")
    parser.add_argument("--offset", type=int, default=BENCH_PORT_OFFSET)
    return parser.parse_args(argv)


def requests(bench: BenchCluster, floor_url: str, tag: str) -> dict[str, load.Request]:
    dapr, gateway, auth = bench.dapr("gateway"), bench.url("gateway"), bench.sidecar_headers
    ids = itertools.count()  # load.run numbers each run's requests from 0 again

    async def raw(s: aiohttp.ClientSession, n: int) -> bool:
        url = f"{dapr}/v1.0/actors/WalletActor/floor-{tag}-d{n % 64}/method/Deposit"
        # with a fresh message id, as the gateway and the forwarder send: a new command, not
        # a duplicate answered from the inbox
        body = {"amount": 1, "message_id": f"floor-{tag}-{next(ids)}"}
        async with s.post(url, json=body, headers=auth) as resp:
            await resp.read()
            return resp.status == 200

    def via(base: str, kind: str, headers: dict[str, str]) -> load.Request:
        async def request(s: aiohttp.ClientSession, n: int) -> bool:
            url = f"{base}/wallets/floor-{tag}-{kind}{n % 64}/deposit"
            async with s.post(url, json={"amount": 1}, headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        return request

    return {
        "raw daprd": raw,
        "gateway": via(gateway, "g", bench.gateway_headers),
        "bare forwarder": via(floor_url, "f", {}),
    }


async def measure(
    bench: BenchCluster, pids: dict[str, int], floor_url: str, args: argparse.Namespace
) -> None:
    tag = uuid.uuid4().hex[:8]
    ways = requests(bench, floor_url, tag)
    for request in ways.values():  # warm every path (activations, connections)
        await load.run(request, concurrency=args.workers, duration=2.0, warmup=0.0)
    served: dict[str, int] = dict.fromkeys(WAYS, 0)
    seconds: dict[str, float] = dict.fromkeys(WAYS, 0.0)
    cpu: dict[str, dict[str, float]] = {way: {} for way in WAYS}
    for round_ in range(args.rounds):
        order = WAYS if round_ % 2 == 0 else WAYS[::-1]
        for way in order:
            before = procfs.cpu_ticks(pids)
            stats = await load.run(
                ways[way], concurrency=args.workers, duration=args.seconds, warmup=0.0
            )
            # the work that follows the last answers (the projector's lag) counts too, and
            # leaves nothing behind for the next way
            await drivers.quiet(pids, within=30.0)
            used = cpu_ms(before, procfs.cpu_ticks(pids), clk_tck=procfs.CLK_TCK)
            n = len(stats.latencies)
            served[way] += n
            seconds[way] += stats.elapsed
            for name, ms in used.items():
                cpu[way][name] = cpu[way].get(name, 0.0) + ms
            total = sum(used.values()) * 1000 / max(1, n)
            print(f"round {round_ + 1} {stats.line(way)}  {total:.0f} µs CPU/request", flush=True)
    rate = {way: served[way] / seconds[way] if seconds[way] else 0.0 for way in WAYS}
    print()
    print(f"{'':24}" + "".join(f"{way:>16}" for way in WAYS))
    print(f"{'req/s':24}" + "".join(f"{rate[way]:16.0f}" for way in WAYS))
    base = rate["raw daprd"] or 1.0
    print(f"{'x raw daprd':24}" + "".join(f"{rate[way] / base:16.2f}" for way in WAYS))
    print("CPU µs per request:")
    names = sorted(cpu["gateway"], key=lambda name: -cpu["gateway"][name])
    for name in [*names, "total"]:
        row = []
        for way in WAYS:
            ms = sum(cpu[way].values()) if name == "total" else cpu[way].get(name, 0.0)
            row.append(ms * 1000 / max(1, served[way]))
        if max(row) >= 1:
            print(f"  {name:22}" + "".join(f"{x:16.0f}" for x in row))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = BenchCluster(offset=args.offset)
    print(f"starting the bench cluster (port offset {args.offset})", file=sys.stderr)
    with bench.running(peer=False):
        port = any_free_port()
        dapr_port = bench.cluster.app("gateway").http_port
        argv = [sys.executable, "-m", "bench.hopfloor", "--port", str(port)]
        floor = ManagedProcess(  # its own process group and log, stopped as the cluster is
            "bare-forwarder",
            [*argv, "--dapr-port", str(dapr_port)],
            bench.config.log_dir / "bare-forwarder.log",
            env=bench.tokens.env,  # as the launcher gives every app: it calls daprd with it
            cwd=ROOT,
        )
        floor.start()
        try:
            wait_until(
                lambda: not can_bind(port),
                timeout=20,
                what="bench.hopfloor listening",
                watch=[floor],
            )
            pids = {**bench.pids(peer=False), "bare forwarder": floor.pid or 0}
            asyncio.run(measure(bench, pids, f"http://127.0.0.1:{port}", args))
        finally:
            floor.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
