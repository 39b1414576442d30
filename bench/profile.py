"""Profile the cluster under saga load: py-spy on every Python app, /proc CPU for the rest.

    python -m bench.profile [--rate 8] [--seconds 20] [--out DIR] [--top 12]
    python -m bench.profile --deposits 32 [--seconds 20] ...

Starts the bench's own cluster (bench.harness, port offset 12875, no workflow peer
load), places orders open loop at `--rate` (or, with `--deposits N`, posts
`POST /wallets/{id}/deposit` to the gateway from N workers in a closed loop, as
`make bench`'s command run does) for a 5 s warm-up plus the profiled window, runs
`py-spy record --format raw --nonblocking` on each Python app meanwhile, and prints: CPU
ms per placed order (µs per deposit) by process (/proc), then for each Python app the
share of its busy samples by layer (HTTP server, HTTP client, Redis, JSON, pydantic, the
SDK, our toolkit...) and its top frames by self time. The collapsed stacks stay in DIR
for flame graphs. Asserts nothing; the figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench import drivers, load, procfs
from bench.figures import cpu_ms
from bench.harness import BENCH_PORT_OFFSET, BenchCluster

# Inclusive layers, first match on any frame's file wins per layer (a sample may count in
# several layers: a redis call inside an actor turn is both "our toolkit" and "redis").
# (label, file prefixes, prefixes left out of it)
LAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("HTTP server (uvicorn, starlette, fastapi)", ("uvicorn/", "starlette/", "fastapi/"), ()),
    ("HTTP client (aiohttp)", ("aiohttp/",), ()),
    ("redis-py", ("redis/",), ()),
    ("json", ("json/",), ()),
    ("pydantic", ("pydantic/", "pydantic_core/"), ()),
    ("Dapr SDK", ("dapr/actor/", "dapr/ext/", "dapr/clients/", "dapr/serializers/"), ()),
    ("our toolkit (actors/toolkit)", ("actors/toolkit/",), ()),
    ("our actors and reactions (actors/, not the toolkit)", ("actors/",), ("actors/toolkit/",)),
    ("our apps and read models (apps/, readmodels/)", ("apps/", "readmodels/"), ()),
    ("logging", ("logging/",), ()),
    ("opentelemetry", ("opentelemetry/",), ()),
    ("prometheus_client", ("prometheus_client/",), ()),
    (
        "thread hand-off (concurrent, threading, anyio)",
        ("concurrent/", "threading.py", "anyio/"),
        (),
    ),
)
LOOP_LEAF = "Runner.run (asyncio/runners.py"  # uvloop's C code below the loop's Python frame
IDLE_LEAVES = ("select (selectors.py", "_run_once (asyncio/base_events")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--rate", type=float, default=8.0, help="offered orders/s (8)")
    parser.add_argument(
        "--deposits", type=int, metavar="N", help="gateway deposits from N workers instead"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="profiled window (20)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/orderflow-profile"))
    parser.add_argument("--top", type=int, default=12, help="frames by self time per app")
    parser.add_argument("--replicas", type=int, default=1, help="actor hosts (1, as make bench)")
    parser.add_argument("--offset", type=int, default=BENCH_PORT_OFFSET)
    return parser.parse_args(argv)


def parse_collapsed(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw format: `frame;frame;...;leaf count` per line, root first."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], *, top: int) -> list[str]:
    """Layer shares and top self frames of one process, as printable lines."""
    busy = [(s, n) for s, n in stacks if not s[-1].startswith(IDLE_LEAVES)]
    total = sum(n for _, n in busy) or 1
    lines = [f"  {total} busy samples"]
    for label, needles, but in LAYERS:
        hits = sum(n for s, n in busy if any(_in(f, needles, but) for f in s))
        if hits:
            lines.append(f"  {100 * hits / total:5.1f} %  {label}")
    in_loop = sum(n for s, n in busy if s[-1].startswith(LOOP_LEAF))
    lines.append(
        f"  {100 * in_loop / total:5.1f} %  the event loop's C code (uvloop: sockets, callbacks)"
    )
    leaves: collections.Counter[str] = collections.Counter()
    for s, n in busy:
        leaves[_short(s[-1])] += n
    lines.append("  top frames by self time:")
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in leaves.most_common(top)]
    return lines


def _in(frame: str, needles: tuple[str, ...], but: tuple[str, ...]) -> bool:
    """Whether the frame's file (after " (") starts with one of `needles`, not `but`."""
    where = frame.partition(" (")[2]
    return where.startswith(needles) and not where.startswith(but)


def _short(frame: str) -> str:
    """`fn (/long/path/site-packages/pkg/mod.py:12)` -> `fn (pkg/mod.py:12)`."""
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", "lib/python3.11/", "/work/", "/tmp/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where}"


async def _drive(bench: BenchCluster, rate: float, seconds: float) -> int:
    tag = uuid.uuid4().hex[:8]
    async with drivers.session() as s:
        gateway, headers = bench.url("gateway"), bench.gateway_headers
        await drivers.seed(s, gateway, tag, headers=headers)
        saga = drivers.orderflow_saga(gateway, tag, headers=headers)
        tasks, start = set(), time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            task = asyncio.create_task(saga.place(s, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return int(rate * seconds)


async def _deposit(bench: BenchCluster, workers: int, seconds: float) -> int:
    """Deposits through the gateway from `workers` in a closed loop; how many were answered
    inside the profiled window (the last `seconds - warm-up`) is counted by the caller."""
    tag, gateway, headers = uuid.uuid4().hex[:8], bench.url("gateway"), bench.gateway_headers
    done = 0

    async def deposit(s: aiohttp.ClientSession, n: int) -> bool:
        nonlocal done
        url = f"{gateway}/wallets/profile-{tag}-{n % drivers.IDS}/deposit"
        async with s.post(url, json={"amount": 1}, headers=headers) as resp:
            await resp.read()
            done += resp.status == 200
            return resp.status == 200

    await load.run(deposit, concurrency=workers, duration=seconds, warmup=0.0)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    bench = BenchCluster(offset=args.offset, replicas=args.replicas)
    warmup = 5.0
    with bench.running(peer=False):
        pids = bench.pids(peer=False)
        apps = {n: p for n, p in pids.items() if not n.endswith("daprd") and _is_python(p)}
        what = f"{args.deposits} deposit workers" if args.deposits else f"{args.rate:g} orders/s"
        print(f"profiling {', '.join(sorted(apps))} at {what}", file=sys.stderr)

        async def run() -> tuple[int, dict[str, int], dict[str, int]]:
            total = warmup + args.seconds
            driving = asyncio.create_task(
                _deposit(bench, args.deposits, total)
                if args.deposits
                else _drive(bench, args.rate, total)
            )
            await asyncio.sleep(warmup)
            before = procfs.cpu_ticks(pids)
            spies = [
                await asyncio.create_subprocess_exec(
                    py_spy, "record", "--format", "raw", "--nonblocking", "--rate", "100",
                    "--duration", str(int(args.seconds)), "--pid", str(pid),
                    "-o", str(args.out / f"{name}.txt"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
                for name, pid in apps.items()
            ]  # fmt: skip
            await asyncio.gather(*(spy.wait() for spy in spies))
            after = procfs.cpu_ticks(pids)
            if args.deposits:  # answered in the window: the run's rate times the window
                return round(await driving * args.seconds / total), before, after
            await driving
            return int(args.rate * args.seconds), before, after

        units, before, after = asyncio.run(run())
    used = cpu_ms(before, after, clk_tck=procfs.CLK_TCK)
    scale, unit = (1000, "µs per deposit") if args.deposits else (1, "ms per placed order")
    print(f"CPU {unit} over the profiled window ({units} in it):")
    for name, ms in sorted(used.items(), key=lambda kv: -kv[1]):
        print(f"  {ms * scale / units:6.1f}  {name}")
    print(f"  {sum(used.values()) * scale / units:6.1f}  total")
    for name in sorted(apps):
        path = args.out / f"{name}.txt"
        if path.exists():
            print(f"{name}:")
            print("\n".join(summarize(parse_collapsed(path), top=args.top)))
    print(f"collapsed stacks: {args.out}")
    return 0


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
