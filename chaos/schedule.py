"""`make chaos`: orders through the gateway under a fault schedule, then every invariant.

    python -m chaos [--duration S] [--rate R] [--faults a,b,...] [--fault-every S] [--seed X]

Starts a cluster of its own (port offset 12000 by default, fresh state in a temp dir),
seeds SKUs and wallets, makes the shipping partner fail a share of shipments, then places
random multi-line orders (some cancelled by the customer) while faults run in a seeded
random order. Then it waits until every order ended, checks the invariants
(chaos.checks), prints the report, and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import itertools
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from actors import catalog
from chaos import checks
from chaos.checks import TERMINAL, TOPICS, Groups, Run, Seed, get_json
from chaos.faults import ActorState, Faults, ports_free
from chaos.load import AvailabilityProbe, OrderLoad
from chaos.streams import consumed
from cluster.config import ClusterConfig
from cluster.local import LocalCluster
from cluster.processes import ClusterError, wait_until

SETTLE_TIMEOUT_S = 120.0
FaultMove = Callable[[Faults], None]

FAULTS: dict[str, tuple[str, FaultMove]] = {
    "kill-app": ("kill -9 an actor host app", lambda f: f.kill_app(f.hosts[0])),
    "kill-daprd": ("kill -9 an actor host's daprd", lambda f: f.kill_sidecar(f.hosts[-1])),
    "term-app": ("SIGTERM-restart an actor host app", lambda f: f.terminate_app(f.hosts[0])),
    "stop-daprd": (
        "SIGSTOP an actor host's daprd 8 s (past placement's keepalive)",
        lambda f: f.stop_process(f"{f.hosts[-1]}-daprd", 8),
    ),
    "stop-app": ("SIGSTOP an actor host app 8 s", lambda f: f.stop_process(f.hosts[0], 8)),
    "stop-app-round": (
        "SIGSTOP an actor host app 20 s while the other's daprd restarts (a rebalance round "
        "it cannot finish: its sidecar wedges until the watchdog restarts it)",
        lambda f: f.stop_app_during_round(20),
    ),
    "rolling": ("restart every actor host in turn", lambda f: f.rolling_restart()),
    "kill-redis": ("kill -9 Redis (AOF)", lambda f: f.kill_process("redis")),
    "kill-placement": ("kill -9 placement", lambda f: f.kill_process("placement")),
    "kill-scheduler": ("kill -9 the scheduler", lambda f: f.kill_process("scheduler")),
    "kill-projector": ("kill -9 the projector", lambda f: f.kill_process("projector")),
    "kill-gateway-daprd": (
        "kill -9 the gateway's daprd",
        lambda f: f.kill_process("gateway-daprd"),
    ),
}


@dataclass(frozen=True)
class Options:
    duration: float = 60.0  # seconds of load
    rate: float = 8.0  # orders per second
    faults: tuple[str, ...] = tuple(FAULTS)
    fault_every: float = 9.0  # seconds between the end of one fault and the next
    each_once: bool = False  # every kind once, however long that takes (not until duration)
    seed: str = ""
    port_offset: int = 12000
    step_timeout_s: int = 30
    shipping_timeout_s: int = 60
    failure_rate: float = 0.1  # shipments the partner fails
    cancel_share: float = 0.1  # orders the customer cancels right after placing
    state_dir: Path | None = None


def _args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="faults: " + "; ".join(f"{k} ({v[0]})" for k, v in FAULTS.items()),
    )
    defaults = Options()
    parser.add_argument("--duration", type=float, default=defaults.duration)
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--faults", default="all", help="comma-separated names, or all / none")
    parser.add_argument("--fault-every", type=float, default=defaults.fault_every)
    parser.add_argument(
        "--each-once",
        action="store_true",
        help="inject every fault kind exactly once, the load running until they are done "
        "(and at least --duration); by default faults repeat until --duration",
    )
    parser.add_argument("--seed", default="", help="repeat a run's order and fault choices")
    parser.add_argument("--port-offset", type=int, default=defaults.port_offset)
    parser.add_argument("--step-timeout", type=int, default=defaults.step_timeout_s)
    parser.add_argument("--shipping-timeout", type=int, default=defaults.shipping_timeout_s)
    parser.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
    parser.add_argument("--cancel-share", type=float, default=defaults.cancel_share)
    ns = parser.parse_args(argv)
    names = {"all": tuple(FAULTS), "none": ()}.get(ns.faults) or tuple(ns.faults.split(","))
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    return Options(
        duration=ns.duration,
        rate=ns.rate,
        faults=names,
        fault_every=ns.fault_every,
        each_once=ns.each_once,
        seed=ns.seed or uuid.uuid4().hex[:8],
        port_offset=ns.port_offset,
        step_timeout_s=ns.step_timeout,
        shipping_timeout_s=ns.shipping_timeout,
        failure_rate=ns.failure_rate,
        cancel_share=ns.cancel_share,
    )


def cluster_config(options: Options, state_dir: Path) -> ClusterConfig:
    return ClusterConfig(
        runtime_dir=ClusterConfig.from_env().runtime_dir,
        state_dir=state_dir,
        port_offset=options.port_offset,
        actor_host_replicas=2,
        extra_app_env={
            "ORDERFLOW_ORDER_STEP_TIMEOUT_S": str(options.step_timeout_s),
            "ORDERFLOW_SHIPPING_TIMEOUT_S": str(options.shipping_timeout_s),
        },
    )


# --- seeding and settling, through the gateway ----------------------------------------------


def post_until_ok(api: httpx.Client, path: str, body: dict[str, Any], key: str) -> None:
    """POST with an Idempotency-Key, retried (same key) until the gateway answers 200."""

    def posted() -> bool:
        return api.post(path, json=body, headers={"Idempotency-Key": key}).status_code == 200

    wait_until(posted, timeout=60, what=f"POST {path} {body} to answer 200")


def seed(api: httpx.Client, run_id: str, *, scale: float = 1.0) -> Seed:
    """Scarce stock and uneven wallets, so some orders are rejected or declined; `scale`
    grows both with the run's length so a long run does not sell out in its first minute."""
    stocked = {f"sku{n}-{run_id}": round((40 + 25 * n) * scale) for n in range(6)}
    funds = {f"cust{n}-{run_id}": round((6_000 + 5_000 * n) * scale) for n in range(8)}
    for sku, quantity in stocked.items():
        post_until_ok(api, f"/inventory/{sku}/restock", {"quantity": quantity}, f"seed-{sku}")
    for customer, amount in funds.items():
        post_until_ok(api, f"/wallets/{customer}/deposit", {"amount": amount}, f"seed-{customer}")
    return Seed(stocked, funds)


def eventually(condition: Callable[[], bool], *, what: str) -> bool:
    """wait_until, but a timeout is left to the checks to report, with their details."""
    try:
        wait_until(condition, timeout=SETTLE_TIMEOUT_S, what=what, interval=0.5)
    except ClusterError as exc:
        print(f"!! {str(exc).splitlines()[0]}", flush=True)
        return False
    return True


def settle_orders(api: httpx.Client, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Wait until every order that exists is terminal; returns their views."""
    pending: set[str] = set(order_ids)
    finals: dict[str, dict[str, Any]] = {}

    def all_terminal() -> bool:
        for order_id in sorted(pending):
            resp = api.get(f"/orders/{order_id}")
            if resp.status_code == 404 or resp.json()["status"] in TERMINAL:
                pending.discard(order_id)
                if resp.status_code == 200:
                    finals[order_id] = resp.json()
        return not pending

    eventually(all_terminal, what="every order to end")
    for order_id in pending:  # still open: their last view goes into the checks
        finals[order_id] = get_json(api, f"/orders/{order_id}")
    return finals


def ledgers_settled(api: httpx.Client, streams: redis.Redis, seeded: Seed) -> bool:
    """Nothing reserved or held any more, every delivery to the actors acknowledged."""
    return (
        all(get_json(api, f"/inventory/{s}")["reserved"] == 0 for s in seeded.stocked)
        and all(
            get_json(api, f"/wallets/{c}?consistency=strong")["held"] == 0 for c in seeded.funds
        )
        and all(consumed(streams, topic) for topic in (*TOPICS, catalog.SHIPMENTS))
    )


# --- the run -----------------------------------------------------------------------------------


def inject_faults(faults: Faults, options: Options, until: float) -> None:
    """Faults in a seeded random order (each once before any repeats) until `until`; with
    `each_once`, every kind exactly once however long that takes, then load until `until`."""
    if not options.faults:
        time.sleep(max(0.0, until - time.monotonic()))
        return
    rng = random.Random(options.seed)
    order = list(options.faults)
    rng.shuffle(order)
    time.sleep(min(4.0, options.fault_every))  # steady state first
    for name in order if options.each_once else itertools.cycle(order):
        late = not options.each_once and time.monotonic() > until
        if late or any(f.failure for f in faults.done):
            return
        faults.kinds.append(name)
        FAULTS[name][1](faults)
        print(f"  fault: {faults.done[-1]}", flush=True)
        time.sleep(max(0.0, min(options.fault_every, until - time.monotonic())))
    time.sleep(max(0.0, until - time.monotonic()))  # each_once: the rest of the load


def under_load(cluster: LocalCluster, api: httpx.Client, run: Run, options: Options) -> Faults:
    faults = Faults(cluster)
    load = OrderLoad(
        str(api.base_url),
        headers=cluster.gateway_keys.headers(),  # the operator (apps/gateway/auth.py)
        customers=list(run.seeded.funds),
        skus=list(run.seeded.stocked),
        rate=options.rate,
        seed=options.seed,
        cancel_share=options.cancel_share,
    )
    sidecar = f"http://127.0.0.1:{cluster.app('gateway').http_port}"
    auth = cluster.tokens.sidecar_headers
    with faults, load, AvailabilityProbe(sidecar, headers=auth) as probe:
        inject_faults(faults, options, time.monotonic() + options.duration)
        load.stop(abandon=any(f.failure for f in faults.done))
    run.results = load.results
    run.unavailable = dict(probe.longest)
    run.problems["cluster did not recover from a fault"] = [
        str(f) for f in faults.done if f.failure
    ]
    return faults


def reconcile(cluster: LocalCluster, api: httpx.Client, streams: redis.Redis, run: Run) -> None:
    """After the load: settle, then compare stored with published, ledgers, read models."""
    run.finals = settle_orders(api, run.results.attempted)
    eventually(lambda: ledgers_settled(api, streams, run.seeded), what="capture, commit, release")
    for proc in cluster.processes.values():
        proc.check_alive()
    aggregates = {(catalog.ORDER_ACTOR, o) for o in run.finals}
    aggregates |= {(catalog.INVENTORY_ACTOR, s) for s in run.seeded.stocked}
    aggregates |= {(catalog.WALLET_ACTOR, c) for c in run.seeded.funds}
    state = ActorState(
        [a.http_port for a in cluster.config.apps() if a.actor_types],
        headers=cluster.tokens.sidecar_headers,
    )
    try:
        stored = checks.read_stored(state, aggregates)
    finally:
        state.close()
    run.stored_events = len(stored)
    # A re-activated actor may still be re-sending its outbox: give it time.
    eventually(
        lambda: not checks.unpublished(stored, checks.published_groups(streams)),
        what="the outbox",
    )
    groups = checks.published_groups(streams)
    run.problems.update(checks.disagreements(stored, groups))
    run.problems["stock not conserved"] = checks.stock_problems(api, run, groups)
    run.problems["money not conserved"] = checks.money_problems(api, run, groups)
    run.problems["acknowledged, not in history"] = checks.acknowledged_problems(run, groups)
    run.problems["order not terminal"] = [
        f"{o}: {v['status']}" for o, v in run.finals.items() if v["status"] not in TERMINAL
    ]
    projected: list[list[str]] = [[]]

    def agree() -> bool:
        projected[0] = checks.read_model_problems(api, run)
        return not projected[0]

    eventually(agree, what="the read models to agree with the actors")
    run.problems["read model disagrees"] = projected[0]


def place_to_end(groups: Groups, orders: Iterable[str]) -> list[float]:
    """Seconds from order.placed to the order's terminal event, per order (from the stream)."""
    times: dict[str, dict[str, dt.datetime]] = collections.defaultdict(dict)
    wanted = set(orders)
    for (kind, order_id, _), copies in groups.items():
        if kind == catalog.ORDER_ACTOR and order_id in wanted:
            event = copies[0]
            times[order_id][event["type"]] = dt.datetime.fromisoformat(event["occurred_at"])
    spans = []
    for seen in times.values():
        end = seen.get("order.shipped") or seen.get("order.cancelled")
        if "order.placed" in seen and end is not None:
            spans.append((end - seen["order.placed"]).total_seconds())
    return spans


def _percentile(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def report(
    cluster: LocalCluster,
    run: Run,
    faults: Faults,
    streams: redis.Redis,
    *,
    planned: Sequence[str] = (),
) -> dict[str, Any]:
    groups = checks.published_groups(streams)
    accepted = len(run.results.accepted)
    cancelled = [v for v in run.finals.values() if v["status"] == "cancelled"]
    reasons = collections.Counter((v["cancel_reason"] or "").split(" for ")[0] for v in cancelled)
    deadline = sum(n for reason, n in reasons.items() if reason.startswith("deadline passed"))
    spans = place_to_end(groups, run.results.accepted)
    copies = [len(c) for c in groups.values()]
    aggregates = {key[1] for key in groups}
    figures: dict[str, Any] = {
        "orders accepted": accepted,
        "orders abandoned (never accepted)": len(run.results.abandoned),
        "outcomes": dict(collections.Counter(v["status"] for v in run.finals.values())),
        "cancel reasons": dict(reasons.most_common()),
        "deadline cancels": f"{deadline} ({100 * deadline / max(accepted, 1):.1f} % of accepted)",
        "customer cancels accepted / too late": (
            f"{len(run.results.cancelled)} / {len(run.results.cancel_refused)}"
        ),
        "place -> terminal p50 / p99 (s)": (
            f"{_percentile(spans, 50):.2f} / {_percentile(spans, 99):.2f}"
        ),
        "longest wait until a place was accepted (s)": round(
            max(run.results.waits.values(), default=0.0), 1
        ),
        "longest an actor did not answer (s; probe period ~1.5 s)": round(
            max(run.unavailable.values(), default=0.0), 1
        ),
        "faults": [str(f) for f in faults.done],
        "fault kinds not run (the load ended first: a longer --duration runs them)": [
            kind for kind in planned if kind not in faults.kinds
        ],
        "longest fault recovery (s)": round(max((f.seconds for f in faults.done), default=0), 1),
        "process restarts": faults.restarts,
        "watchdog restarts (a wedged sidecar)": faults.watchdog.restarted,
        "watchdog spared (slow, not wedged)": faults.watchdog.spared,
        "events": f"{sum(copies)} published copies of {len(groups)} versions, "
        f"{run.stored_events} stored, {sum(n > 1 for n in copies)} re-sent",
        "fence conflicts (log lines)": _log_lines(cluster, faults.hosts, "fence conflict"),
        "dead letters": dict(checks.dead_letters(streams, aggregates)),
        "problems": {kind: len(found) for kind, found in run.problems.items()},
    }
    print("\n--- chaos report ---")
    for name, value in figures.items():
        print(f"{name}: {value}")
    return figures


def _log_lines(cluster: LocalCluster, hosts: Iterable[str], text: str) -> int:
    logs = (cluster.config.log_dir / f"{host}.log" for host in hosts)
    return sum(log.read_text(errors="replace").count(text) for log in logs)


def run_chaos(options: Options) -> Run:
    """One whole run on a cluster of its own; the problems found are in the returned Run."""
    state_dir = options.state_dir or Path(tempfile.mkdtemp(prefix="orderflow-chaos-"))
    cluster = LocalCluster(cluster_config(options, state_dir))
    processes = cluster.processes.values()
    wait_until(lambda: ports_free(processes), timeout=120, what="the cluster's ports to be free")
    print(
        f"chaos: seed {options.seed}, faults {','.join(options.faults) or 'none'}, "
        f"logs in {cluster.config.log_dir}",
        flush=True,
    )
    with cluster.running():
        gateway = f"http://127.0.0.1:{cluster.app('gateway').app_port}"
        shipping = f"http://127.0.0.1:{cluster.app('shipping').app_port}"
        streams = redis.Redis(
            port=cluster.config.redis_port, password=cluster.tokens.redis, decode_responses=True
        )
        operator = cluster.gateway_keys.headers()  # every route (apps/gateway/auth.py)
        with httpx.Client(base_url=gateway, timeout=30, headers=operator) as api:
            settings = {"delay_ms": 50, "failure_rate": options.failure_rate}
            httpx.put(f"{shipping}/partner/settings", json=settings, timeout=10).raise_for_status()
            scale = max(1.0, options.duration * options.rate / 480)  # 1 at 60 s x 8/s
            run = Run(seeded=seed(api, options.seed, scale=scale))
            faults = under_load(cluster, api, run, options)
            run.fault_kinds = list(faults.kinds)
            if not run.problems["cluster did not recover from a fault"]:
                reconcile(cluster, api, streams, run)
            groups = checks.published_groups(streams)  # readable even if the actors are stuck
            run.problems["forked (aggregate, version)"] = checks.forks(groups)
            run.problems["order request refused (4xx)"] = run.results.refused
            report(cluster, run, faults, streams, planned=options.faults)
        streams.close()
    return run


def violations(run: Run) -> str:
    found = {kind: examples for kind, examples in run.problems.items() if examples}
    return "\n".join(
        f"{kind}: {len(examples)}, e.g.\n  " + "\n  ".join(examples[:3])
        for kind, examples in found.items()
    )


def main(argv: list[str] | None = None) -> int:
    run = run_chaos(_args(argv))
    found = violations(run)
    if found:
        print(f"\nVIOLATIONS\n{found}")
        return 1
    print("\nevery invariant held")
    return 0
