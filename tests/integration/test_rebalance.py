"""Rebalance under load: restarting actor hosts while orders flow forks no actor, loses nothing.

The module runs its own cluster (small saga deadlines, so every order ends quickly). Orders
flow through the gateway while actor hosts are crashed, stopped, paused and rolled; then
every published event is compared with every other copy of its (aggregate, version) and
with the event the actor stored, and stock and money are reconciled with the orders.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cluster.local import LocalCluster
from cluster.processes import ClusterError
from tests.integration.chaos import ActorState, Faults, LoadResults, OrderLoad, ports_free
from tests.integration.conftest import cluster_config
from tests.integration.support import consumed, stream_events, wait_until

# Its own cluster beside the session's. At 12000 every port lies above Linux's ephemeral
# range (32768-60999), so no client's TIME_WAIT socket can hold one of them.
CHAOS_PORT_OFFSET = int(os.environ.get("ORDERFLOW_CHAOS_PORT_OFFSET", "12000"))
TERMINAL = {"shipped", "cancelled"}
TOPICS = ("orders", "inventory", "wallet")  # one per actor type
ORDERS_PER_SECOND = 10.0
FAULT_BUDGET_S = 60.0  # no fault round starts after this: the test should take about 2 min
SETTLE_TIMEOUT_S = 90.0

Group = tuple[str, str, int]  # (aggregate_type, aggregate_id, aggregate_version)
Groups = dict[Group, list[dict[str, Any]]]  # every published copy of each version
Problems = dict[str, list[str]]


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    config = cluster_config(
        Path(tmp_path_factory.mktemp("rebalance")),
        port_offset=CHAOS_PORT_OFFSET,
        step_timeout_s=5,  # every saga ends soon after the load stops
        shipping_timeout_s=6,
    )
    local = LocalCluster(config)
    processes = local.processes.values()
    wait_until(lambda: ports_free(processes), timeout=120, what="the cluster's ports to be free")
    with local.running():
        yield local


@pytest.fixture(scope="module")
def api(chaos_cluster: LocalCluster) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{chaos_cluster.app('gateway').app_port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def streams(chaos_cluster: LocalCluster) -> Iterator[redis.Redis]:
    port = chaos_cluster.config.redis_port
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    yield client
    client.close()


@dataclass(frozen=True)
class Seed:
    stocked: dict[str, int]  # sku -> units restocked
    funds: dict[str, int]  # customer -> amount deposited


@dataclass
class Run:
    """What one chaos run did and saw; `problems` by kind, each a list of examples."""

    seeded: Seed
    results: LoadResults = field(default_factory=LoadResults)
    faults_skipped: list[str] = field(default_factory=list)
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> view
    stored_events: int = 0
    marks: dict[str, float] = field(default_factory=lambda: {"start": time.monotonic()})
    problems: Problems = field(default_factory=lambda: collections.defaultdict(list))


# --- through the gateway -------------------------------------------------------------------------


def post_until_ok(api: httpx.Client, path: str, body: dict[str, Any], key: str) -> None:
    """POST with an Idempotency-Key, retried (same key) until the gateway answers 200."""

    def posted() -> bool:
        return api.post(path, json=body, headers={"Idempotency-Key": key}).status_code == 200

    wait_until(posted, timeout=60, what=f"POST {path} {body} to answer 200")


def seed(api: httpx.Client, run_id: str) -> Seed:
    """Scarce stock and uneven wallets, so some orders are rejected or declined."""
    stocked = {f"sku{n}-{run_id}": 40 + 25 * n for n in range(6)}
    funds = {f"cust{n}-{run_id}": 6_000 + 5_000 * n for n in range(8)}
    for sku, quantity in stocked.items():
        post_until_ok(api, f"/inventory/{sku}/restock", {"quantity": quantity}, f"seed-{sku}")
    for customer, amount in funds.items():
        post_until_ok(api, f"/wallets/{customer}/deposit", {"amount": amount}, f"seed-{customer}")
    return Seed(stocked, funds)


def get_json(api: httpx.Client, path: str) -> Any:
    resp = api.get(path)
    resp.raise_for_status()
    return resp.json()


def eventually(condition: Callable[[], bool], *, what: str) -> bool:
    """wait_until, but a timeout is left to the checks to report, with their details."""
    try:
        wait_until(condition, timeout=SETTLE_TIMEOUT_S, what=what, interval=0.5)
    except ClusterError as exc:
        print(f"\n!! {str(exc).splitlines()[0]}")
        return False
    return True


def settle_orders(api: httpx.Client, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Wait until every order that exists is terminal; returns their views (never placed: none)."""
    pending, finals = set(order_ids), {}

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
        and all(consumed(streams, topic) for topic in (*TOPICS, "shipments"))
    )


# --- published and stored events -----------------------------------------------------------------


def content(event: dict[str, Any]) -> str:
    return json.dumps([event["event_id"], event["type"], event["payload"]], sort_keys=True)


def published_groups(streams: redis.Redis) -> Groups:
    groups: Groups = collections.defaultdict(list)
    for topic in TOPICS:
        for cloud_event in stream_events(streams, topic):
            event = cloud_event["data"]
            key = (event["aggregate_type"], event["aggregate_id"], event["aggregate_version"])
            groups[key].append(event)
    return groups


def forks(groups: Groups) -> list[str]:
    """(aggregate, version) published with more than one content: the actor forked."""
    found = []
    for key, copies in sorted(groups.items()):
        distinct = sorted({content(e) for e in copies})
        if len(distinct) > 1:
            found.append(f"{key}: {distinct}")
    return found


def read_stored(state: ActorState, aggregates: Iterable[tuple[str, str]]) -> dict[Group, Any]:
    """Every event each aggregate's snapshot says it has: event-1 .. event-<version>."""
    stored: dict[Group, Any] = {}

    def read_one(aggregate: tuple[str, str]) -> None:
        snapshot = state.read(*aggregate, "aggregate") or {}
        for version in range(1, snapshot.get("version", 0) + 1):
            stored[(*aggregate, version)] = state.read(*aggregate, f"event-{version}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read_one, sorted(aggregates)))
    return stored


def unpublished(stored: dict[Group, Any], groups: Groups) -> list[str]:
    return [str(key) for key in sorted(stored) if key not in groups]


def disagreements(stored: dict[Group, Any], groups: Groups) -> Problems:
    problems: Problems = {"published, never stored": [], "published differs from stored": []}
    for key, copies in sorted(groups.items()):
        held = stored.get(key)
        if key not in stored:
            problems["published, never stored"].append(f"{key}: {content(copies[0])}")
        elif held is None or any(content(e) != content(held) for e in copies):
            problems["published differs from stored"].append(f"{key}: stored {held}")
    problems["stored, never published"] = unpublished(stored, groups)
    return problems


# --- conservation --------------------------------------------------------------------------------


def totals(groups: Groups, event_type: str, amount: str) -> collections.Counter[str]:
    """Sum of payload[amount] over one event type (first copy of each version), by aggregate."""
    sums: collections.Counter[str] = collections.Counter()
    for (_, aggregate_id, _), copies in groups.items():
        if copies[0]["type"] == event_type:
            sums[aggregate_id] += int(copies[0]["payload"][amount])
    return sums


def ledger_problems(
    api: httpx.Client,
    seeded: dict[str, int],
    flows: tuple[collections.Counter[str], collections.Counter[str]],
    settled: collections.Counter[str],
    *,
    path: str,
    fields: tuple[str, str],
    names: str,
) -> list[str]:
    """Each ledger's (in, out, balance, held) from the events and its actor, against what the
    shipped orders took: in == seeded, out == settled, balance == in - out, held == 0."""
    credited, debited = flows
    problems = []
    for key, amount in seeded.items():
        view = get_json(api, path.format(key))
        balance, held = (view[field] for field in fields)
        found = (credited[key], debited[key], balance, held)
        expected = (amount, settled[key], amount - settled[key], 0)
        if found != expected:
            problems.append(f"{key} ({names}): {found} != {expected}")
    return problems


def stock_problems(api: httpx.Client, run: Run, groups: Groups) -> list[str]:
    sold = collections.Counter[str]()
    for order in run.finals.values():
        if order["status"] == "shipped":
            sold.update({line["sku"]: line["quantity"] for line in order["lines"]})
    flows = (
        totals(groups, "inventory.stock_restocked", "quantity"),
        totals(groups, "inventory.stock_committed", "quantity"),
    )
    names = "restocked, committed, on_hand, reserved"
    fields = ("on_hand", "reserved")
    path = "/inventory/{}"
    return ledger_problems(
        api, run.seeded.stocked, flows, sold, path=path, fields=fields, names=names
    )


def money_problems(api: httpx.Client, run: Run, groups: Groups) -> list[str]:
    paid = collections.Counter[str]()
    for order in run.finals.values():
        if order["status"] == "shipped":
            paid[order["customer_id"]] += order["total"]
    flows = (
        totals(groups, "wallet.funds_credited", "amount"),
        totals(groups, "wallet.payment_captured", "amount"),
    )
    names = "deposited, captured, balance, held"
    path = "/wallets/{}?consistency=strong"
    fields = ("balance", "held")
    return ledger_problems(
        api, run.seeded.funds, flows, paid, path=path, fields=fields, names=names
    )


# --- the phases of the test ----------------------------------------------------------------------


def inject_faults(faults: Faults) -> list[str]:
    """Every kind of restart, steady load between them, while the budget lasts and the cluster
    recovers. Returns the rounds not done."""
    first, last = faults.hosts[0], faults.hosts[-1]
    rounds: list[tuple[str, Callable[[], None]]] = [
        ("kill -9 app", lambda: faults.kill_app(first)),
        ("kill -9 daprd", lambda: faults.kill_sidecar(last)),
        ("SIGTERM app", lambda: faults.terminate_app(first)),
        ("SIGSTOP daprd", lambda: faults.pause_sidecar(last, 4)),
        ("rolling restart", faults.rolling_restart),
        ("kill -9 app again", lambda: faults.kill_app(last)),
    ]
    deadline = time.monotonic() + FAULT_BUDGET_S
    time.sleep(4)  # steady state first
    for n, (_, fault) in enumerate(rounds):
        if time.monotonic() > deadline or any(f.failure for f in faults.done):
            return [name for name, _ in rounds[n:]]
        fault()
        print(f"\n  {faults.done[-1]}", end="", flush=True)
        time.sleep(3)
    return []


def under_load(cluster: LocalCluster, api: httpx.Client, run: Run, faults: Faults) -> None:
    load = OrderLoad(
        str(api.base_url),
        customers=list(run.seeded.funds),
        skus=list(run.seeded.stocked),
        rate=ORDERS_PER_SECOND,
        seed=str(uuid.uuid4().hex[:8]),
    )
    with load:
        run.faults_skipped = inject_faults(faults)
        recovered = not any(f.failure for f in faults.done)
        load.stop(abandon=not recovered)
    run.results = load.results
    run.marks["load"] = time.monotonic()
    run.problems["cluster did not recover from a fault"] = [
        str(f) for f in faults.done if f.failure
    ]


def reconcile(cluster: LocalCluster, api: httpx.Client, streams: redis.Redis, run: Run) -> None:
    """After the load: settle, then compare stored with published and count stock and money."""
    run.finals = settle_orders(api, run.results.attempted)
    eventually(lambda: ledgers_settled(api, streams, run.seeded), what="capture, commit, release")
    run.marks["settled"] = time.monotonic()
    for proc in cluster.processes.values():
        proc.check_alive()
    aggregates = {("OrderActor", o) for o in run.finals}
    aggregates |= {("InventoryActor", s) for s in run.seeded.stocked}
    aggregates |= {("WalletActor", c) for c in run.seeded.funds}
    state = ActorState([a.http_port for a in cluster.config.apps() if a.actor_types])
    try:
        stored = read_stored(state, aggregates)
    finally:
        state.close()
    run.stored_events = len(stored)
    # A re-activated actor may still be re-sending its outbox: give it time.
    eventually(lambda: not unpublished(stored, published_groups(streams)), what="the outbox")
    groups = published_groups(streams)
    run.problems.update(disagreements(stored, groups))
    run.problems["stock not conserved"] = stock_problems(api, run, groups)
    run.problems["money not conserved"] = money_problems(api, run, groups)
    run.problems["order not terminal"] = [
        f"{o}: {v['status']}" for o, v in run.finals.items() if v["status"] not in TERMINAL
    ]


def log_lines(cluster: LocalCluster, hosts: Iterable[str], text: str) -> int:
    logs = (cluster.config.log_dir / f"{host}.log" for host in hosts)
    return sum(log.read_text(errors="replace").count(text) for log in logs)


def report(cluster: LocalCluster, run: Run, faults: Faults, groups: Groups) -> None:
    copies = [len(c) for c in groups.values()]
    cancelled = [v for v in run.finals.values() if v["status"] == "cancelled"]
    marks = [*run.marks.items(), ("checks", time.monotonic())]
    figures = {
        "orders accepted": len(run.results.accepted),
        "orders abandoned": len(run.results.abandoned),
        "request retries": run.results.retries,
        "outcomes": dict(collections.Counter(v["status"] for v in run.finals.values())),
        "cancel reasons": dict(
            collections.Counter((v["cancel_reason"] or "").split(":")[0] for v in cancelled)
        ),
        "faults": [str(f) for f in faults.done],
        "faults skipped": run.faults_skipped,
        "process restarts": faults.restarts,
        "events published": f"{sum(copies)} copies of {len(groups)} (aggregate, version)",
        "events stored": run.stored_events,
        "versions published more than once": sum(n > 1 for n in copies),
        "'fence conflict' log lines": log_lines(cluster, faults.hosts, "fence conflict"),
        "'publish failed' log lines": log_lines(cluster, faults.hosts, "publish failed"),
        "problems": {kind: len(found) for kind, found in run.problems.items()},
        "phases (s)": {b[0]: round(b[1] - a[1]) for a, b in itertools.pairwise(marks)},
    }
    print("\n--- rebalance under load ---")
    for name, value in figures.items():
        print(f"{name}: {value}")


@pytest.mark.slow
def test_restarting_actor_hosts_under_load_forks_no_actor_and_conserves_stock_and_money(
    chaos_cluster: LocalCluster, api: httpx.Client, streams: redis.Redis
) -> None:
    run = Run(seeded=seed(api, uuid.uuid4().hex[:8]))
    faults = Faults(chaos_cluster)
    under_load(chaos_cluster, api, run, faults)
    if not run.problems["cluster did not recover from a fault"]:
        reconcile(chaos_cluster, api, streams, run)
    groups = published_groups(streams)  # readable even when the actor runtime is stuck
    run.problems["forked (aggregate, version)"] = forks(groups)
    run.problems["order request refused (4xx)"] = run.results.refused
    report(chaos_cluster, run, faults, groups)
    found = {kind: examples for kind, examples in run.problems.items() if examples}
    assert not found, "\n".join(
        f"{kind}: {len(examples)}, e.g.\n  " + "\n  ".join(examples[:3])
        for kind, examples in found.items()
    )
