"""What the bench drives: command runs, saga steps (Orderflow and the workflow peer), quiet.

A saga step places orders open loop at the offered rate for `duration` seconds and
snapshots CPU (/proc utime+stime of every process) at its start and at the end of its
window: when the last `TAIL` orders placed have finished (shipped or cancelled for
Orderflow, completed for the peer) or `settle` seconds after the last placement. The
orders' own times are read after the window (not counted): place -> confirmed from the
order's history (`occurred_at` of order.placed and order.confirmed), the peer's from the
workflow's createdAt / lastUpdatedAt.

Every call made straight to a daprd carries `dapr_headers` (the cluster's Dapr API token:
BenchCluster.sidecar_headers); the gateway sends the same token to its own daprd, so the
three command ways pay for it alike. Every call to the gateway's API carries
`gateway_headers` (the operator's client key: BenchCluster.gateway_headers), so the
gateway's figures include its auth check (apps/gateway/auth.py) as production pays it;
the calls straight to daprd never reach the gateway and pay for none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import procfs
from bench.figures import Box, BoxSample, CommandRun, Step, cpu_ms, percentile, thread_deltas
from bench.load import run

IDS = 512  # command runs spread over many actors (one id is one turn queue)
SKUS, WALLETS = 16, 64
TAIL = 20  # the window ends once the last TAIL orders of a step have finished
ORDER_DONE = frozenset({"shipped", "cancelled"})
WF_DONE = frozenset({"COMPLETED", "FAILED", "TERMINATED"})
Progress = Callable[[str], None]


def session(limit: int = 512) -> aiohttp.ClientSession:
    # idle connections closed before uvicorn's 5 s keep-alive does, so none is reused stale
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=2)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


# --- commands ---------------------------------------------------------------------------


CPU_TAIL_S = 0.5  # after the window: the work that follows the last answers (deliveries)
COMMAND_ROUNDS = 3  # each command's run split into rounds, the three interleaved


async def commands(
    *,
    gateway: str,
    dapr: str,
    duration: float,
    concurrency: int,
    pids: Callable[[], dict[str, int]] = dict,
    rounds: int = COMMAND_ROUNDS,
    dapr_headers: Mapping[str, str] | None = None,
    gateway_headers: Mapping[str, str] | None = None,
) -> dict[str, CommandRun]:
    """bare (BeaconActor.Touch), daprd (WalletActor.Deposit), gateway (POST deposit); with
    `pids`, the CPU each costs every process, per request. Each runs `duration` seconds in
    all, as `rounds` rounds of the three in turn (the order reversed every other round), so
    a drift of the machine's speed hits each alike. The calls to `dapr` carry
    `dapr_headers`, as the gateway's own calls to its daprd carry the token; the calls to
    `gateway` carry `gateway_headers` (its client key)."""
    auth, client = dict(dapr_headers or {}), dict(gateway_headers or {})
    tag = uuid.uuid4().hex[:8]
    ids = itertools.count()  # run() numbers each run's requests from 0 again

    async def bare(s: aiohttp.ClientSession, n: int) -> bool:
        url = f"{dapr}/v1.0/actors/BeaconActor/bench-{tag}-b{n % IDS}/method/Touch"
        async with s.post(url, json={}, headers=auth) as resp:
            await resp.read()
            return resp.status == 200

    async def daprd(s: aiohttp.ClientSession, n: int) -> bool:
        url = f"{dapr}/v1.0/actors/WalletActor/bench-{tag}-d{n % IDS}/method/Deposit"
        # with a fresh message id, as the gateway always sends one: the same command (its
        # inbox entry included) on both paths, never a duplicate answered from the inbox
        body = {"amount": 1, "message_id": f"bench-{tag}-{next(ids)}"}
        async with s.post(url, json=body, headers=auth) as resp:
            body = await resp.json(content_type=None)
            return resp.status == 200 and body.get("ok") is True

    async def via_gateway(s: aiohttp.ClientSession, n: int) -> bool:
        async with s.post(
            f"{gateway}/wallets/bench-{tag}-g{n % IDS}/deposit", json={"amount": 1}, headers=client
        ) as resp:
            await resp.read()
            return resp.status == 200

    ways = (
        ("bare", "BeaconActor.Touch via daprd", bare),
        ("daprd", "WalletActor.Deposit via daprd", daprd),
        ("gateway", "POST /wallets/{id}/deposit", via_gateway),
    )
    rounds = max(1, rounds)
    latencies: dict[str, list[float]] = {key: [] for key, _, _ in ways}
    elapsed = dict.fromkeys(latencies, 0.0)
    errors = dict.fromkeys(latencies, 0)
    used: dict[str, dict[str, float]] = {key: {} for key in latencies}
    windows: dict[str, list[tuple[BoxSample, BoxSample, float]]] = {key: [] for key in latencies}
    for round_ in range(rounds):
        for key, _, request in ways if round_ % 2 == 0 else ways[::-1]:
            watched: dict[str, int] = pids()
            ticks: list[dict[str, int]] = []
            boxes: list[tuple[float, BoxSample]] = []
            stats = await run(
                request,
                concurrency=concurrency,
                duration=duration / rounds,
                warmup=1.0 if round_ == 0 else 0.5,
                opened=functools.partial(_snapshot, watched, ticks, boxes),
            )
            await asyncio.sleep(CPU_TAIL_S)
            _snapshot(watched, ticks, boxes)  # the window's end, with its tail
            if len(boxes) == 2:
                (opened_at, before), (closed_at, after) = boxes
                windows[key].append((before, after, closed_at - opened_at))
            latencies[key] += stats.latencies
            elapsed[key] += stats.elapsed
            errors[key] += stats.errors
            if len(ticks) == 2:
                for name, cpu in cpu_ms(ticks[0], ticks[-1], clk_tck=procfs.CLK_TCK).items():
                    used[key][name] = used[key].get(name, 0.0) + cpu
            await quiet(watched, within=10.0)
    out: dict[str, CommandRun] = {}
    for key, label, _ in ways:
        ms = [x * 1000 for x in latencies[key]]
        served = max(1, len(ms))
        rate = len(ms) / elapsed[key] if elapsed[key] else 0.0
        per_request = {name: value * 1000 / served for name, value in used[key].items()}
        box = Box.over(windows[key], measured_ms=sum(used[key].values()), clk_tck=procfs.CLK_TCK)
        out[key] = CommandRun(
            label, rate, percentile(ms, 0.5), percentile(ms, 0.99), errors[key], per_request, box
        )
    return out


def _snapshot(
    pids: dict[str, int], into: list[dict[str, int]], boxes: list[tuple[float, BoxSample]]
) -> None:
    into.append(procfs.cpu_ticks(pids))
    boxes.append((time.perf_counter(), procfs.box_sample()))


# --- saga steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Saga:
    """How to place, poll and time orders: Orderflow's (gateway) or the peer's (workflow)."""

    place: Callable[[aiohttp.ClientSession, int], Coroutine[Any, Any, str | None]]
    done: Callable[[aiohttp.ClientSession, str], Awaitable[bool]]
    timing: Callable[[aiohttp.ClientSession, str], Awaitable[Timing]]


@dataclass(frozen=True)
class Timing:
    """One order after the fact: its start, its confirmation (None if not), cancelled?"""

    started: dt.datetime | None
    confirmed: dt.datetime | None
    cancelled: bool = False


def _lines(tag: str, n: int) -> list[dict[str, Any]]:
    return [{"sku": f"s{(n + k) % SKUS}-{tag}", "quantity": 1, "unit_price": 100} for k in range(2)]


async def seed(
    s: aiohttp.ClientSession, gateway: str, tag: str, *, headers: Mapping[str, str] | None = None
) -> None:
    """Stock the step's SKUs and fund its wallets generously (nothing is refused), every
    call carrying `headers` (the gateway's client key); an error answer raises."""
    client = dict(headers or {})
    calls = [(f"/inventory/s{n}-{tag}/restock", {"quantity": 10**6}) for n in range(SKUS)]
    calls += [(f"/wallets/w{n}-{tag}/deposit", {"amount": 10**10}) for n in range(WALLETS)]

    async def post(path: str, body: dict[str, int]) -> None:
        async with s.post(f"{gateway}{path}", json=body, headers=client) as resp:
            await resp.read()
            resp.raise_for_status()  # a step over unstocked SKUs would measure refusals

    await asyncio.gather(*(post(path, body) for path, body in calls))


def orderflow_saga(gateway: str, tag: str, *, headers: Mapping[str, str] | None = None) -> Saga:
    """Orderflow's saga through the gateway's API, every call carrying `headers` (the
    gateway's client key)."""
    client = dict(headers or {})

    async def place(s: aiohttp.ClientSession, n: int) -> str | None:
        body = {"customer_id": f"w{n % WALLETS}-{tag}", "lines": _lines(tag, n)}
        headers = {**client, "Idempotency-Key": f"{tag}-{n}"}
        try:
            async with s.post(f"{gateway}/orders", json=body, headers=headers) as resp:
                await resp.read()
                return resp.headers.get("location") if resp.status == 202 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def done(s: aiohttp.ClientSession, location: str) -> bool:
        async with s.get(f"{gateway}{location}", headers=client) as resp:
            return resp.status == 200 and (await resp.json()).get("status") in ORDER_DONE

    async def timing(s: aiohttp.ClientSession, location: str) -> Timing:
        url, params = f"{gateway}{location}/history", {"limit": "100"}
        async with s.get(url, params=params, headers=client) as resp:
            events = (await resp.json())["events"] if resp.status == 200 else []
        at = {e["type"]: dt.datetime.fromisoformat(e["occurred_at"]) for e in events}
        return Timing(at.get("order.placed"), at.get("order.confirmed"), "order.cancelled" in at)

    return Saga(place, done, timing)


def workflow_saga(
    peer_dapr: str, tag: str, *, dapr_headers: Mapping[str, str] | None = None
) -> Saga:
    """The peer's saga through its daprd's workflow API, every call carrying `dapr_headers`."""
    base, auth = f"{peer_dapr}/v1.0/workflows/dapr", dict(dapr_headers or {})

    async def place(s: aiohttp.ClientSession, n: int) -> str | None:
        oid = f"wf-{tag}-{n}"
        body = {"order_id": oid, "customer_id": f"w{n % WALLETS}-{tag}", "lines": _lines(tag, n)}
        try:
            url = f"{base}/fulfil_order/start"
            async with s.post(url, params={"instanceID": oid}, json=body, headers=auth) as resp:
                await resp.read()
                return oid if resp.status in (200, 202) else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def status(s: aiohttp.ClientSession, oid: str) -> dict[str, Any]:
        async with s.get(f"{base}/{oid}", headers=auth) as resp:
            return dict(await resp.json()) if resp.status == 200 else {}

    async def done(s: aiohttp.ClientSession, oid: str) -> bool:
        return (await status(s, oid)).get("runtimeStatus") in WF_DONE

    async def timing(s: aiohttp.ClientSession, oid: str) -> Timing:
        body = await status(s, oid)
        started, ended = _when(body.get("createdAt")), _when(body.get("lastUpdatedAt"))
        output = str((body.get("properties") or {}).get("dapr.workflow.output", ""))
        ok = body.get("runtimeStatus") == "COMPLETED" and "confirmed" in output
        return Timing(started, ended if ok else None, "cancelled" in output)

    return Saga(place, done, timing)


def _when(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


async def saga_step(
    saga: Saga,
    *,
    rate: float,
    duration: float,
    settle: float,
    pids: Callable[[], dict[str, int]],
    progress: Progress,
    first: int = 0,
    lag: Callable[[], Awaitable[tuple[float | None, float | None]]] | None = None,
) -> Step:
    """Orders `first`, `first` + 1, ... (unique per step: order ids and idempotency keys
    derive from the number) at `rate` for `duration` seconds."""
    total = max(1, int(rate * duration))
    step = Step(offered_rate=rate, offered=total)
    async with session() as s:
        names = pids()
        before, woken = procfs.cpu_ticks(names), procfs.wakeups(names)
        box = procfs.box_sample()
        start = time.perf_counter()
        tasks: list[asyncio.Task[str | None]] = []
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(saga.place(s, first + n)))
            if n and n % max(1, int(rate * 5)) == 0:
                progress(f"  {n}/{total} placed")
        ids = [i for i in await asyncio.gather(*tasks) if i]
        await _wait_tail(s, saga, ids[-TAIL:], within=settle)
        step.cpu_ms = cpu_ms(before, procfs.cpu_ticks(names), clk_tck=procfs.CLK_TCK)
        step.box = Box.between(
            box,
            procfs.box_sample(),
            seconds=time.perf_counter() - start,
            measured_ms=step.cpu_total_ms,
            clk_tck=procfs.CLK_TCK,
        )
        step.wakeups = thread_deltas(woken, procfs.wakeups(names))
        if lag is not None:
            step.lag_p50_ms, step.lag_p99_ms = await lag()
        window = time.perf_counter() - start
        progress(f"  window {window:.1f} s; reading {len(ids)} orders' times")
        timings = await _gather_limited([saga.timing(s, i) for i in ids], limit=8)
    _fold(step, timings)
    return step


async def _wait_tail(s: aiohttp.ClientSession, saga: Saga, ids: list[str], within: float) -> None:
    pending, deadline = set(ids), time.perf_counter() + within
    while pending and time.perf_counter() < deadline:
        finished = await asyncio.gather(*(_safe_done(s, saga, i) for i in pending))
        pending -= {i for i, ok in zip(list(pending), finished, strict=True) if ok}
        if pending:
            await asyncio.sleep(0.5)


async def _safe_done(s: aiohttp.ClientSession, saga: Saga, oid: str) -> bool:
    try:
        return await saga.done(s, oid)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False


async def _gather_limited(calls: list[Awaitable[Timing]], *, limit: int) -> list[Timing]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[Timing]) -> Timing:
        async with gate:
            try:
                return await call
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                return Timing(None, None)

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _fold(step: Step, timings: list[Timing]) -> None:
    starts = [t.started for t in timings if t.started]
    confirms = [t for t in timings if t.started and t.confirmed]
    step.latencies_ms = [(t.confirmed - t.started).total_seconds() * 1000 for t in confirms]  # type: ignore[operator]
    step.cancelled = sum(t.cancelled for t in timings)
    if starts and confirms:
        last = max(t.confirmed for t in confirms if t.confirmed)
        step.span_s = max(1e-3, (last - min(starts)).total_seconds())


# --- between phases -----------------------------------------------------------------------


async def quiet(pids: dict[str, int], *, below_cores: float = 0.2, within: float = 60.0) -> float:
    """Wait until the processes together use under `below_cores` for 2 s; the seconds waited."""
    start, calm = time.perf_counter(), 0
    last = procfs.cpu_ticks(pids)
    while time.perf_counter() - start < within and calm < 2:
        await asyncio.sleep(1.0)
        now = procfs.cpu_ticks(pids)
        used = sum(cpu_ms(last, now, clk_tck=procfs.CLK_TCK).values()) / 1000.0
        calm = calm + 1 if used < below_cores else 0
        last = now
    return time.perf_counter() - start
