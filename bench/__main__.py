"""make bench: start a cluster of its own, measure Orderflow beside its baselines, stop it.

    python -m bench [--quick] [--rates 5,10,20,40] [--soak SECONDS] ...

Prints progress while it runs, then ONE table: commands against the bare SDK actor, saga
steps beside the same saga as a Dapr Workflow (bench/peers/), CPU per order by process,
projection lag; with --soak, RSS per process over a soak at half the sustained rate.
Asserts nothing. The machine is shared: read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Sequence

import aiohttp

from bench import drivers, procfs
from bench.figures import RssSeries, Step, SustainRule, highest_sustained
from bench.harness import BENCH_PORT_OFFSET, BenchCluster
from bench.report import Report, render
from cluster.config import GO_MAXPROCS_EXPECTED, GOGC_EXPECTED, go_maxprocs, gogc

QUICK = {"command_seconds": 5.0, "step_seconds": 10.0, "settle": 20.0, "rates": "5,10,20,40"}
FULL = {"command_seconds": 15.0, "step_seconds": 30.0, "settle": 60.0, "rates": "5,10,20,30,40,60"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short steps (~3 min in all)")
    parser.add_argument("--command-seconds", type=float, help="per command run (15; quick 5)")
    parser.add_argument("--step-seconds", type=float, help="per saga step (30; quick 10)")
    parser.add_argument("--settle", type=float, help="max wait for a step's tail (60; quick 20)")
    parser.add_argument("--rates", help="offered orders/s, ascending (5,10,20,30,40,60)")
    parser.add_argument("--concurrency", type=int, default=32, help="command workers (32)")
    parser.add_argument("--p99-bound-ms", type=float, default=1000.0, help="sustained p99 bound")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="actor hosts (1: sized for a 2-core box; 2: make run's failover layout)",
    )
    parser.add_argument("--offset", type=int, default=BENCH_PORT_OFFSET, help="port offset")
    parser.add_argument("--no-peer", action="store_true", help="skip the workflow peer")
    parser.add_argument("--soak", type=float, default=0.0, help="RSS soak seconds (e.g. 600)")
    parser.add_argument("--soak-rate", type=float, help="orders/s (half the sustained rate)")
    parser.add_argument(
        "--soak-warmup",
        type=float,
        default=180.0,
        help="seconds of orders at the soak rate before RSS is sampled (180)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the state dir")
    parser.add_argument(
        "--redis-fsync",
        choices=("always", "everysec"),
        default="always",
        help="Redis appendfsync (always; everysec: the documented faster mode, 1 s loss window)",
    )
    parser.add_argument(
        "--daprd-gogc",
        type=_gogc,
        help="Go's GOGC for every daprd (ORDERFLOW_DAPRD_GOGC; unset: Go's default, 100)",
    )
    parser.add_argument(
        "--go-maxprocs",
        type=_go_maxprocs,
        default="1",
        help="GOMAXPROCS of every daprd, placement and scheduler (ORDERFLOW_GO_MAXPROCS: "
        "1, the cluster's default; auto: Go's own, every core)",
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.rate_list = [float(r) for r in str(args.rates).split(",") if r.strip()]
    if not args.rate_list or args.rate_list != sorted(args.rate_list) or min(args.rate_list) <= 0:
        parser.error("--rates: positive numbers, ascending, comma-separated")
    if args.soak < 0 or args.soak_warmup < 0:
        parser.error("--soak, --soak-warmup: seconds, 0 or more")
    return args


def _gogc(value: str) -> str:
    try:
        return gogc(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {GOGC_EXPECTED}") from exc


def _go_maxprocs(value: str) -> str:
    try:
        return go_maxprocs(value) or "auto"
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {GO_MAXPROCS_EXPECTED}") from exc


class Progress:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        elapsed = int(time.monotonic() - self.start)
        print(f"[bench {elapsed // 60}:{elapsed % 60:02d}] {text}", file=sys.stderr, flush=True)


async def _projector_lag(projector: str) -> tuple[float | None, float | None]:
    async with drivers.session(8) as s, s.get(f"{projector}/projector/stats") as resp:
        lag = (await resp.json())["lag_ms"]
    return lag["p50"], lag["p99"]


async def _reset_projector(projector: str) -> None:
    async with drivers.session(8) as s, s.post(f"{projector}/projector/stats/reset") as resp:
        await resp.read()


async def _steps(
    name: str,
    saga: drivers.Saga,
    *,
    args: argparse.Namespace,
    bench: BenchCluster,
    peer: bool,
    say: Progress,
    rates: Sequence[float],
) -> list[Step]:
    """Step the offered rate up until a step is not sustained (Orderflow), or through
    `rates` until a step confirms too few orders (the peer: Orderflow's rates, so every
    Orderflow step has its peer beside it even where the peer's p99 is over the bound)."""
    rule, steps = SustainRule(p99_bound_ms=args.p99_bound_ms), []
    projector = bench.url("projector")
    say(f"{name}: warm-up, {rates[0]:g} orders/s x 3 s (not counted)")
    await drivers.saga_step(
        saga,
        rate=rates[0],
        duration=3,
        settle=args.settle,
        pids=lambda: {},
        progress=lambda _: None,
    )
    for n, rate in enumerate(rates, start=1):
        await drivers.quiet(bench.pids(peer=True))
        of = f"{n}/{len(rates)}"
        say(f"{name} saga step {of}: {rate:g} orders/s x {args.step_seconds:g} s")
        if not peer:
            await _reset_projector(projector)
        step = await drivers.saga_step(
            saga,
            rate=rate,
            duration=args.step_seconds,
            settle=args.settle,
            pids=lambda: bench.pids(peer=peer),
            progress=say,
            first=n * 1_000_000,  # order numbers (ids, idempotency keys) unique per step
            lag=None if peer else (lambda: _projector_lag(projector)),
        )
        steps.append(step)
        say(
            f"  {step.confirmed}/{step.offered} confirmed, {step.confirmed_rate:.1f}/s, "
            f"p99 {step.p(0.99) or 0:.0f} ms, {step.cpu_total_ms / max(1, step.confirmed):.0f} "
            f"ms CPU/order: {'sustained' if step.sustained(rule) else 'NOT sustained'}"
        )
        completed = step.confirmed >= rule.min_fraction * step.offered
        if not (step.sustained(rule) or (peer and completed)):
            break
    return steps


async def _soak(
    bench: BenchCluster, *, rate: float, seconds: float, warmup: float, say: Progress
) -> list[RssSeries]:
    """Orders at `rate` for `warmup` seconds, then `seconds` more with the RSS of every
    process sampled ~20 times. The warm-up lets the working set settle before the first
    sample: an order's activation lives a minute past its last turn
    (ORDERFLOW_ORDER_IDLE_TIMEOUT_S), so the actor host holds more orders for the first
    minute or two at any rate, and a soak at a rate below the last step's starts with
    the step's orders still active."""
    pids = bench.pids(peer=True)
    samples: dict[str, list[int]] = {name: [] for name in pids}
    tag = uuid.uuid4().hex[:8]
    saga = drivers.orderflow_saga(bench.url("gateway"), tag, headers=bench.gateway_headers)
    every, start = max(5.0, seconds / 20), time.perf_counter()
    next_note, next_sample = start, start + warmup
    async with drivers.session() as s:
        await drivers.seed(s, bench.url("gateway"), tag, headers=bench.gateway_headers)
        tasks: set[asyncio.Task[str | None]] = set()
        for n in range(int(rate * (warmup + seconds))):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            task = asyncio.create_task(saga.place(s, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            now = time.perf_counter()
            if now >= next_sample:
                _sample(pids, samples)
                next_sample += every
            if now >= next_note:
                say(_soak_progress(now - start, warmup=warmup, seconds=seconds))
                next_note += every
        await asyncio.gather(*tasks)
    _sample(pids, samples)
    return [RssSeries(name, tuple(values), every) for name, values in samples.items()]


def _soak_progress(elapsed: float, *, warmup: float, seconds: float) -> str:
    if elapsed < warmup:
        return f"warm-up {elapsed:.0f}/{warmup:g} s"
    return f"soak {elapsed - warmup:.0f}/{seconds:g} s"


def _sample(pids: dict[str, int], samples: dict[str, list[int]]) -> None:
    for name, pid in pids.items():
        rss = procfs.rss_kib(pid)
        if rss is not None:
            samples[name].append(rss)


async def measure(
    args: argparse.Namespace, bench: BenchCluster, report: Report, say: Progress
) -> None:
    if not args.soak:
        say(
            f"commands: 3 runs x {args.command_seconds:g} s in {drivers.COMMAND_ROUNDS} "
            f"interleaved rounds, {args.concurrency} workers"
        )
        report.commands = await drivers.commands(
            gateway=bench.url("gateway"),
            dapr=bench.dapr("gateway"),
            duration=args.command_seconds,
            concurrency=args.concurrency,
            pids=lambda: bench.pids(peer=False),
            dapr_headers=bench.sidecar_headers,  # what the gateway sends its daprd too
            gateway_headers=bench.gateway_headers,  # its client key: the auth check counts
        )
        for run in report.commands.values():
            say(f"  {run.label}: {run.rate:.0f} req/s")
    tag = uuid.uuid4().hex[:8]
    async with drivers.session() as s:
        await drivers.seed(s, bench.url("gateway"), tag, headers=bench.gateway_headers)
    ours = drivers.orderflow_saga(bench.url("gateway"), tag, headers=bench.gateway_headers)
    report.orderflow = await _steps(
        "Orderflow", ours, args=args, bench=bench, peer=False, say=say, rates=args.rate_list
    )
    if not (args.no_peer or args.soak):
        theirs = drivers.workflow_saga(bench.peer_dapr, tag, dapr_headers=bench.sidecar_headers)
        rates = [step.offered_rate for step in report.orderflow]
        report.peer = await _steps(
            "workflow peer", theirs, args=args, bench=bench, peer=True, say=say, rates=rates
        )
    if args.soak:
        best = highest_sustained(report.orderflow, report.rule)
        rate = args.soak_rate or (best.offered_rate / 2 if best else args.rate_list[0] / 2)
        await drivers.quiet(bench.pids(peer=True))
        say(f"soak: {args.soak_warmup:g} s of warm-up, then {args.soak:g} s at {rate:g} orders/s")
        report.soak_rate, report.soak_seconds = rate, args.soak
        report.soak_warmup = args.soak_warmup
        report.soak = await _soak(
            bench, rate=rate, seconds=args.soak, warmup=args.soak_warmup, say=say
        )


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    report = Report(
        mode=("quick" if args.quick else "full")
        + ("" if args.redis_fsync == "always" else f", Redis appendfsync {args.redis_fsync}")
        + ("" if args.daprd_gogc is None else f", daprd GOGC {args.daprd_gogc}")
        + ("" if args.go_maxprocs == "1" else f", Go GOMAXPROCS {args.go_maxprocs}"),
        replicas=args.replicas,
        concurrency=args.concurrency,
        command_seconds=args.command_seconds,
        step_seconds=args.step_seconds,
        rule=SustainRule(p99_bound_ms=args.p99_bound_ms),
        load_before=procfs.machine_busy(),
    )
    bench = BenchCluster(
        offset=args.offset,
        replicas=args.replicas,
        redis_fsync=args.redis_fsync,
        daprd_gogc=args.daprd_gogc,
        go_maxprocs=args.go_maxprocs,
    )
    say = Progress()
    say(f"starting the bench cluster (port offset {args.offset}, state {bench.state_dir})")
    try:
        with bench.running(keep_logs=args.keep_logs):
            say("cluster ready")
            asyncio.run(measure(args, bench, report, say))
            say("stopping the bench cluster")
    except KeyboardInterrupt:
        say("interrupted: cluster stopped; figures so far follow")
    except (aiohttp.ClientError, TimeoutError) as exc:
        say(f"a request failed ({exc!r}): cluster stopped; figures so far follow")
    report.load_after = procfs.machine_busy()
    out(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
