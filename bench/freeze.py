"""Freeze, kill and restart an actor host while actor calls flow; print how long the rest stalls.

Starts its own cluster (ports moved by --port-offset, state under --state-dir), drives a
steady stream of BeaconActor Touch calls over --ids distinct ids through the gateway's
daprd (one caller loop per id, each call with the cluster's Dapr API token), then, for
one actor host:

  daprd-stop   SIGSTOP its daprd for --freeze seconds, then SIGCONT
  app-stop     SIGSTOP its app for --freeze seconds, then SIGCONT
  daprd-kill   kill -9 its daprd, restart it after --down seconds
  restart      restart every actor host (daprd and app, SIGTERM) one after the other
  app-stop-round  SIGSTOP its app, and meanwhile kill -9 and restart the daprd of the last
               actor host, so a dissemination round runs while the app cannot answer daprd's
               deactivations; "others" excludes that host's actors too (last: in Dapr 1.18.2
               a host kicked mid-round can stay wedged until its daprd restarts)

For each fault it prints: the longest gap between two successful calls of one actor that
was NOT on the faulted host ("others stall"), when every actor that was on it answered
again ("moved back", from the fault's start), failed calls, whether the cluster settled
(placement lists every actor host and every actor answered since the fault ended) within
--settle seconds after the fault ended, and placement's dissemination timeouts / daprd's
forced drains in the logs. Figures only, no asserts.

    python -m bench.freeze --disseminate 5s --drain 2
    python -m bench.freeze --faults restart --interval 0.2 --long-share 0.05   # heavier
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import os
import random
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from cluster.config import ClusterConfig
from cluster.local import LocalCluster, http_get_json, placement_hosts
from cluster.processes import ClusterError, ManagedProcess

FAULTS = ("daprd-stop", "app-stop", "daprd-kill", "restart", "app-stop-round")
LOG_MARKERS = {
    "placement kicks": ("placement", "Closing non-responding stream"),
    "diss timeouts": ("placement", "Dissemination timeout for version"),
    "forced drains": ("actor-host", "force cancelling remaining claims"),
}


@dataclass(frozen=True)
class Call:
    actor: int
    start: float
    end: float
    ok: bool
    replica: str


@dataclass
class Load:
    """One caller loop per actor id; every call is kept for the analysis."""

    url: str
    ids: int
    interval: float
    hold_ms: int
    long_hold_ms: int
    long_share: float
    timeout: float
    headers: Mapping[str, str] = field(default_factory=dict)  # the daprd's API token
    calls: list[Call] = field(default_factory=list)
    running: bool = True

    def actor_id(self, n: int) -> str:
        return f"freeze-{n:04d}"

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.ids + 10, keepalive_timeout=2)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self.headers
        ) as session:
            await asyncio.gather(*(self._loop(session, n) for n in range(self.ids)))

    async def _loop(self, session: aiohttp.ClientSession, n: int) -> None:
        await asyncio.sleep(random.uniform(0, self.interval))
        url = f"{self.url}/v1.0/actors/BeaconActor/{self.actor_id(n)}/method/Touch"
        while self.running:
            long = random.random() < self.long_share
            body = {
                "request_id": uuid.uuid4().hex,
                "hold_ms": self.long_hold_ms if long else self.hold_ms,
            }
            start = time.monotonic()
            ok, replica = await self._touch(session, url, body)
            self.calls.append(Call(n, start, time.monotonic(), ok, replica))
            await asyncio.sleep(self.interval if ok else min(self.interval, 0.2))

    @staticmethod
    async def _touch(
        session: aiohttp.ClientSession, url: str, body: dict[str, object]
    ) -> tuple[bool, str]:
        try:
            async with session.post(url, json=body) as resp:
                if resp.status != 200:
                    await resp.read()
                    return False, ""
                envelope = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False, ""
        if not envelope.get("ok"):
            return False, ""
        return True, str(envelope["result"].get("replica", ""))

    def owners(self, since: float) -> dict[int, str]:
        """Which replica last served each actor (successful calls that ended after `since`)."""
        return {c.actor: c.replica for c in self.calls if c.ok and c.end >= since}

    def answered_since(self, since: float) -> set[int]:
        return {c.actor for c in self.calls if c.ok and c.start >= since}


def longest_gap(calls: Iterable[Call], actors: set[int], t0: float, t1: float) -> float:
    """The longest time one of `actors` went without a successful call, within [t0, t1]."""
    last: dict[int, float] = {}
    worst = 0.0
    for c in sorted((c for c in calls if c.ok and c.actor in actors), key=lambda c: c.end):
        if c.end < t0:
            last[c.actor] = c.end
            continue
        if c.end > t1:
            continue
        worst = max(worst, c.end - last.get(c.actor, t0))
        last[c.actor] = c.end
    for actor in actors:  # still waiting at t1
        worst = max(worst, t1 - last.get(actor, t0))
    return worst


def recovered_after(calls: Iterable[Call], actors: set[int], t0: float) -> float | None:
    """Seconds from t0 until every actor in `actors` had a successful call started after t0."""
    first: dict[int, float] = {}
    for c in calls:
        if c.ok and c.start >= t0 and c.actor in actors:
            first[c.actor] = min(first.get(c.actor, c.end), c.end)
    if not actors or len(first) < len(actors):
        return None if actors else 0.0
    return max(first.values()) - t0


@dataclass
class LogMarks:
    """Counts marker lines appended to the cluster's logs since `mark()`."""

    log_dir: Path
    offsets: dict[Path, int] = field(default_factory=dict)

    def mark(self) -> None:
        self.offsets = {p: p.stat().st_size for p in self.log_dir.glob("*.log")}

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(LOG_MARKERS, 0)
        for path in self.log_dir.glob("*.log"):
            with path.open("rb") as f:
                f.seek(self.offsets.get(path, 0))
                text = f.read().decode(errors="replace")
            for label, (prefix, needle) in LOG_MARKERS.items():
                if path.name.startswith(prefix):
                    found[label] += text.count(needle)
        return found


@dataclass
class Bench:
    cluster: LocalCluster
    load: Load
    args: argparse.Namespace
    marks: LogMarks

    def actor_hosts(self) -> list[str]:
        return [a.name for a in self.cluster.config.apps() if a.actor_types]

    def hosts(self) -> set[str]:
        cfg = self.cluster.config
        return {f"127.0.0.1:{a.internal_grpc_port}" for a in cfg.apps() if a.actor_types}

    def placement_complete(self) -> bool:
        url = f"http://127.0.0.1:{self.cluster.config.port(50105)}/placement/state"
        try:
            return self.hosts() <= placement_hosts(http_get_json(url))
        except (OSError, ValueError):
            return False

    async def settle(self, since: float) -> float | None:
        """Seconds after `since` until placement lists every host and every actor answered."""
        deadline = since + self.args.settle
        while time.monotonic() < deadline:
            answered = len(self.load.answered_since(since)) == self.load.ids
            if answered and await asyncio.to_thread(self.placement_complete):
                return time.monotonic() - since
            await asyncio.sleep(0.25)
        return None

    async def phase(
        self, label: str, host: str, fault: Callable[[], Awaitable[None]], also: str = ""
    ) -> None:
        await asyncio.sleep(self.args.quiet)
        t0 = time.monotonic()
        owners = self.load.owners(since=t0 - 3 * self.args.interval - 1)
        moved = {a for a, r in owners.items() if r == host}
        others = {a for a, r in owners.items() if r not in (host, also)}
        self.marks.mark()
        await fault()
        t1 = time.monotonic()
        settled = await self.settle(t1)
        end = t1 + (settled if settled is not None else self.args.settle)
        self.report(label, host, t0, t1, end, moved, others, settled)

    def report(
        self,
        label: str,
        host: str,
        t0: float,
        t1: float,
        end: float,
        moved: set[int],
        others: set[int],
        settled: float | None,
    ) -> None:
        calls = [c for c in self.load.calls if t0 <= c.start <= end]
        failed = sum(not c.ok for c in calls)
        back = recovered_after(self.load.calls, moved, t0)
        logs = " ".join(f"{k} {v}" for k, v in self.marks.counts().items())
        print(
            f"{time.strftime('%H:%M:%S', time.localtime(time.time() - (time.monotonic() - t0)))} "
            f"{label:<14} {host:<13} fault {t1 - t0:5.1f}s  moved {len(moved):3d}  "
            f"others stall {longest_gap(self.load.calls, others, t0, end):5.1f}s  "
            f"moved back {_secs(back)}  failed {failed:4d}/{len(calls):<5d} "
            f"settled {_secs(settled) if settled is not None else 'NO':>6}  {logs}",
            flush=True,
        )

    # --- the faults ----------------------------------------------------------------------
    async def freeze(self, process: str) -> None:
        proc = self.cluster.processes[process]
        proc.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(self.args.freeze)
        finally:
            proc.signal(signal.SIGCONT)

    async def freeze_with_round(self, process: str, trigger: str) -> None:
        proc = self.cluster.processes[process]
        proc.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(2.0)
            await self.kill_restart(trigger)
            await asyncio.sleep(max(0.0, self.args.freeze - 2.0 - self.args.down))
        finally:
            proc.signal(signal.SIGCONT)

    async def kill_restart(self, process: str) -> None:
        await asyncio.to_thread(self.cluster.kill, process)
        await asyncio.sleep(self.args.down)
        await start(self.cluster.processes[process])

    async def restart_host(self, host: str) -> None:
        procs = [self.cluster.processes[n] for n in (f"{host}-daprd", host)]
        for proc in procs:
            await asyncio.to_thread(proc.stop)
        for proc in reversed(procs):
            await start(proc)

    async def run(self, faults: list[str]) -> None:
        host = self.args.host
        actions: dict[str, Callable[[], Awaitable[None]]] = {
            "daprd-stop": lambda: self.freeze(f"{host}-daprd"),
            "app-stop": lambda: self.freeze(host),
            "daprd-kill": lambda: self.kill_restart(f"{host}-daprd"),
        }
        last = self.actor_hosts()[-1]
        for name in faults:
            if name == "app-stop-round":
                fault = functools.partial(self.freeze_with_round, host, f"{last}-daprd")
                await self.phase(name, host, fault, also=last)
            elif name == "restart":
                for app in self.actor_hosts():
                    await self.phase("restart", app, functools.partial(self.restart_host, app))
            else:
                await self.phase(name, host, actions[name])


async def start(proc: ManagedProcess, patience: float = 20.0) -> None:
    """Start `proc`; while a port is briefly taken (an outgoing connection's), try again."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await asyncio.to_thread(proc.start)
            return
        except ClusterError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"   ({proc.name}: {exc.args[0][:60]}...; retrying)", flush=True)
            await asyncio.sleep(1.0)


def _secs(value: float | None) -> str:
    return f"{value:5.1f}s" if value is not None else "never "


def baseline(load: Load, t0: float, t1: float) -> str:
    calls = [c for c in load.calls if t0 <= c.start and c.end <= t1]
    lat = sorted(c.end - c.start for c in calls if c.ok)
    if not lat:
        return "baseline: no successful calls"
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    gap = longest_gap(load.calls, set(range(load.ids)), t0, t1)
    return (
        f"baseline     {len(lat) / (t1 - t0):6.0f} calls/s  p50 {lat[len(lat) // 2] * 1000:5.0f} ms"
        f"  p99 {p99:5.0f} ms  longest gap {gap:4.1f}s  failed {sum(not c.ok for c in calls)}"
    )


def make_config(args: argparse.Namespace) -> ClusterConfig:
    env = {
        **os.environ,
        "ORDERFLOW_PORT_OFFSET": str(args.port_offset),
        "ORDERFLOW_STATE_DIR": str(args.state_dir),
        "ORDERFLOW_PLACEMENT_DISSEMINATE_TIMEOUT": args.disseminate,
        "ORDERFLOW_ACTOR_HOSTS": str(args.actor_hosts),
        "ORDERFLOW_OPS": os.environ.get("ORDERFLOW_OPS", "0"),  # no Prometheus/Zipkin load
    }
    config = ClusterConfig.from_env(env)
    return dataclasses.replace(
        config, extra_app_env={**config.extra_app_env, "ORDERFLOW_DRAIN_TIMEOUT_S": args.drain}
    )


async def main_async(args: argparse.Namespace, cluster: LocalCluster) -> None:
    gateway = cluster.app("gateway")
    load = Load(
        url=f"http://127.0.0.1:{gateway.http_port}",
        ids=args.ids,
        interval=args.interval,
        hold_ms=args.hold_ms,
        long_hold_ms=args.long_hold_ms,
        long_share=args.long_share,
        timeout=args.call_timeout,
        headers=cluster.tokens.sidecar_headers,
    )
    task = asyncio.create_task(load.run())
    bench = Bench(cluster, load, args, LogMarks(cluster.config.log_dir))
    try:
        await asyncio.sleep(args.warmup)
        t0 = time.monotonic()
        await asyncio.sleep(args.baseline)
        print(baseline(load, t0, time.monotonic()), flush=True)
        await bench.run(args.faults)
    finally:
        load.running = False
        await asyncio.wait_for(task, timeout=args.call_timeout + 5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.freeze", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--disseminate", default="5s", help="placement --disseminate-timeout")
    p.add_argument("--drain", default="2", help="actor host drain timeout, seconds")
    p.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    p.add_argument("--host", default="actor-host-1", help="the actor host to fault")
    p.add_argument("--freeze", type=float, default=20.0, help="SIGSTOP duration, s")
    p.add_argument("--down", type=float, default=2.0, help="daprd-kill: restart after, s")
    p.add_argument("--settle", type=float, default=60.0, help="settle limit after a fault, s")
    p.add_argument("--quiet", type=float, default=5.0, help="steady calls before each fault, s")
    p.add_argument("--ids", type=int, default=200, help="distinct BeaconActor ids")
    p.add_argument("--interval", type=float, default=1.0, help="pause between calls per id, s")
    p.add_argument("--hold-ms", type=int, default=20, help="Touch hold_ms of most calls")
    p.add_argument("--long-hold-ms", type=int, default=1500, help="hold_ms of long calls")
    p.add_argument("--long-share", type=float, default=0.02, help="share of long calls")
    p.add_argument(
        "--call-timeout", type=float, default=5.0, help="HTTP timeout per call (a caller's), s"
    )
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--baseline", type=float, default=10.0)
    p.add_argument("--actor-hosts", type=int, default=3, help="actor host replicas")
    p.add_argument("--port-offset", type=int, default=13000)
    p.add_argument("--state-dir", type=Path, default=None, help="default: a new temp dir")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.state_dir is None:
        args.state_dir = Path(tempfile.mkdtemp(prefix="orderflow-freeze-"))
    cluster = LocalCluster(make_config(args))
    placement_argv = list(cluster.processes["placement"].argv)
    flag = placement_argv.index("--disseminate-timeout") + 1
    print(
        f"placement --disseminate-timeout {placement_argv[flag]}  drain {args.drain}s  "
        f"ids {args.ids} every {args.interval}s  hold {args.hold_ms} ms "
        f"({args.long_share:.0%} {args.long_hold_ms} ms)  logs {cluster.config.log_dir}",
        flush=True,
    )
    try:
        with cluster.running():
            asyncio.run(main_async(args, cluster))
    except ClusterError as exc:
        print(f"cluster error: {exc}", flush=True)


if __name__ == "__main__":
    main()
