"""The read side on the real cluster: projector, rebuild and queries agree with the actors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from cluster.config import ROOT
from cluster.local import LocalCluster
from readmodels.keys import DEFAULT_GENERATION, Layout
from tests.integration.support import call, deposit, fund_and_stock, ok, place, restock, wait_until

TERMINAL = {"shipped", "cancelled"}
LAYOUT = Layout()


# --- the write side, through the actors (as in test_saga.py) ---------------------------------


def actor_view(client: httpx.Client, actor_type: str, actor_id: str) -> dict[str, Any]:
    """The actor's own view plus its aggregate version."""
    answer = call(client, actor_type, actor_id, "Get")
    return {**ok(answer), "aggregate_version": answer["aggregate_version"]}


def settle(client: httpx.Client, order_id: str, *, timeout: float = 90) -> None:
    wait_until(
        lambda: actor_view(client, "OrderActor", order_id)["status"] in TERMINAL,
        timeout=timeout,
        what=f"order {order_id} to end",
    )


@pytest.fixture
def workload(gateway_sidecar: httpx.Client, uid: str) -> Workload:
    return Workload(gateway_sidecar, uid)


class Workload:
    """Random concurrent orders over a few SKUs and customers, some of them refused."""

    def __init__(self, client: httpx.Client, uid: str) -> None:
        self.client = client
        self.rng = random.Random(uid)
        self.skus = [f"rs{n}-{uid}" for n in range(5)]
        self.customers = [f"rc{n}-{uid}" for n in range(10)]
        self.orders: list[str] = []
        for sku in self.skus:
            restock(client, sku, self.rng.randint(20, 80))
        for customer in self.customers:
            deposit(client, customer, self.rng.randint(800, 6_000))

    def plans(self, count: int) -> list[tuple[str, list[tuple[str, int, int]]]]:
        return [
            (
                self.rng.choice(self.customers),
                [(s, self.rng.randint(1, 3), self.rng.randint(10, 300)) for s in self.pick()],
            )
            for _ in range(count)
        ]

    def pick(self) -> list[str]:
        return self.rng.sample(self.skus, self.rng.randint(1, 2))

    def run(self, count: int, *, threads: int = 16) -> list[str]:
        with ThreadPoolExecutor(threads) as pool:
            placed = list(pool.map(lambda p: place(self.client, *p), self.plans(count)))
            list(pool.map(lambda o: settle(self.client, o), placed))
        self.orders += placed
        return placed


# --- the read side, straight from Redis -------------------------------------------------------


def generation(r: redis.Redis) -> str:
    return str(r.get(LAYOUT.active_key) or DEFAULT_GENERATION)


def row(r: redis.Redis, key: str) -> dict[str, str]:
    found: dict[str, str] = r.hgetall(f"{LAYOUT.base}{generation(r)}:{key}")  # type: ignore[assignment]
    return found


def disagreements(client: httpx.Client, r: redis.Redis, work: Workload) -> list[str]:
    """Every order, SKU and wallet of the workload whose read model differs from its actor."""
    wrong = []
    for order_id in work.orders:
        view, got = actor_view(client, "OrderActor", order_id), row(r, f"order:{order_id}")
        want = {
            "status": view["status"],
            "customer_id": view["customer_id"],
            "total": str(view["total"]),
            "reserved_skus": json.dumps(view["reserved_skus"], separators=(",", ":")),
            "cancel_reason": view["cancel_reason"] or "",
            "aggregate_version": str(view["aggregate_version"]),
        }
        if {k: got.get(k) for k in want} != want:
            wrong.append(f"order {order_id}: {got} != {want}")
    for actor_type, kind, ids, fields in (
        ("InventoryActor", "stock", work.skus, ("on_hand", "reserved", "available")),
        ("WalletActor", "wallet", work.customers, ("balance", "held", "available")),
    ):
        for actor_id in ids:
            view, got = actor_view(client, actor_type, actor_id), row(r, f"{kind}:{actor_id}")
            want = {k: str(view[k]) for k in (*fields, "aggregate_version")}
            if {k: got.get(k) for k in want} != want:
                wrong.append(f"{kind} {actor_id}: {got} != {want}")
    return wrong


def agree(client: httpx.Client, r: redis.Redis, work: Workload, *, timeout: float) -> None:
    last: list[str] = []

    def check() -> bool:
        last[:] = disagreements(client, r, work)
        return not last

    try:
        wait_until(check, timeout=timeout, what="the read models to agree with the actors")
    except Exception:
        print("\n".join(last[:10]))
        raise


def counted_once(r: redis.Redis) -> None:
    """Every order is counted placed once, and shipped/cancelled once (global invariants)."""
    gen = generation(r)
    totals: dict[str, int] = {}
    for key in r.scan_iter(match=f"{LAYOUT.base}{gen}:counts:*"):
        for name, count in r.hgetall(key).items():
            totals[str(name)] = totals.get(str(name), 0) + int(count)
    index = f"{LAYOUT.base}{gen}:orders"
    assert totals.get("placed", 0) == r.zcard(f"{index}:all")
    assert totals.get("shipped", 0) == r.zcard(f"{index}:status:shipped")
    assert totals.get("cancelled", 0) == r.zcard(f"{index}:status:cancelled")
    assert totals.get("confirmed", 0) >= totals.get("shipped", 0)


def dump(r: redis.Redis, gen: str) -> dict[str, Any]:
    """Every key of a generation (but its meta) by suffix, with its content."""
    prefix = f"{LAYOUT.base}{gen}:"
    found: dict[str, Any] = {}
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        suffix = str(key).removeprefix(prefix)
        if suffix != "meta":
            kind = r.type(key)
            found[suffix] = (
                r.hgetall(key) if kind == "hash" else r.zrange(key, 0, -1, withscores=True)
            )
    return found


def projector_stats(cluster: LocalCluster) -> dict[str, Any]:
    url = f"http://127.0.0.1:{cluster.app('projector').app_port}/projector/stats"
    body: dict[str, Any] = httpx.get(url, timeout=10).json()
    return body


def quiet(cluster: LocalCluster) -> None:
    """Wait until the projector applied nothing new for a second."""
    seen: list[int] = [-1]

    def still() -> bool:
        applied = int(projector_stats(cluster)["events"]["applied"])
        if applied == seen[0]:
            return True
        seen[0] = applied
        time.sleep(1)
        return False

    wait_until(still, timeout=60, what="the projector to go quiet")


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_after_two_hundred_concurrent_orders_the_read_models_agree_with_the_actors(
    cluster: LocalCluster,
    gateway_sidecar: httpx.Client,
    redis_client: redis.Redis,
    workload: Workload,
) -> None:
    started = time.monotonic()
    workload.run(200)
    placed = time.monotonic() - started

    agree(gateway_sidecar, redis_client, workload, timeout=60)

    counted_once(redis_client)
    agreed = time.monotonic() - started - placed
    stats = projector_stats(cluster)
    lag, events = stats["lag_ms"], stats["events"]
    print(
        f"\n200 orders settled in {placed:.1f}s; read models agreed {agreed:.1f}s later; "
        f"projection lag p50 {lag['p50']} ms, p99 {lag['p99']} ms; "
        f"{events['duplicates']} duplicates, {events['out_of_order']} out of order"
    )


def test_a_rebuild_from_scratch_produces_identical_read_models(
    cluster: LocalCluster,
    gateway_sidecar: httpx.Client,
    redis_client: redis.Redis,
    workload: Workload,
) -> None:
    workload.run(20)
    agree(gateway_sidecar, redis_client, workload, timeout=60)
    quiet(cluster)
    before_gen = generation(redis_client)
    before = dump(redis_client, before_gen)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.projector.rebuild",
            "--redis",
            cluster.config.redis_host,
            "--dapr-http",
            str(cluster.app("projector").http_port),
        ],
        cwd=ROOT,
        # the session cluster's token and Redis password (the default state dir's are not)
        env={**os.environ, **cluster.tokens.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr + done.stdout
    assert "switched: queries now read" in done.stdout
    assert "orders " in done.stdout
    assert "events " in done.stdout
    after_gen = generation(redis_client)
    assert after_gen != before_gen
    assert dump(redis_client, after_gen) == before
    assert list(redis_client.scan_iter(match=f"{LAYOUT.base}{before_gen}:*")) == []
    print("\n" + done.stdout.strip().splitlines()[-1])


def test_killing_the_projector_mid_stream_loses_nothing_and_counts_nothing_twice(
    cluster: LocalCluster,
    gateway_sidecar: httpx.Client,
    redis_client: redis.Redis,
    workload: Workload,
) -> None:
    # Down for 12 s: longer than a bounded inbound retry policy would wait. Deliveries
    # retry for ever (components/resiliency.yaml); the projector's redelivery loop is
    # the second line of defence should a policy ever give up.
    runner = threading.Thread(target=workload.run, args=(60,), kwargs={"threads": 8})
    runner.start()
    try:
        time.sleep(1.0)
        cluster.kill("projector")
        time.sleep(12)
    finally:
        cluster.restart("projector")
        runner.join()

    agree(gateway_sidecar, redis_client, workload, timeout=90)

    counted_once(redis_client)
    assert len(workload.orders) == 60


def test_paging_returns_every_order_exactly_once_while_orders_are_placed(
    api: httpx.Client, gateway_sidecar: httpx.Client, uid: str
) -> None:
    customer, sku = f"pc-{uid}", f"ps-{uid}"
    deposit(gateway_sidecar, customer, 1_000_000)
    restock(gateway_sidecar, sku, 10_000)
    lines = [(sku, 1, 10)]
    with ThreadPoolExecutor(8) as pool:
        first = set(pool.map(lambda _: place(gateway_sidecar, customer, lines), range(30)))

    def listed() -> set[str]:
        return {o["order_id"] for o in pages(api, customer)}

    wait_until(lambda: first <= listed(), timeout=30, what="the first orders to be listed")
    more = threading.Thread(
        target=lambda: [place(gateway_sidecar, customer, lines) for _ in range(30)]
    )
    more.start()
    try:
        walked = [o["order_id"] for o in pages(api, customer, limit=4, pause=0.05)]
    finally:
        more.join()

    assert len(walked) == len(set(walked))
    assert first <= set(walked)


def pages(
    api: httpx.Client, customer: str, *, limit: int = 50, pause: float = 0
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"customer": customer, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        resp = api.get("/orders", params=params)
        assert resp.status_code == 200, resp.text
        items += resp.json()["items"]
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            return items
        time.sleep(pause)


def test_the_gateway_reads_balances_and_your_own_writes_from_the_read_models(
    api: httpx.Client, uid: str
) -> None:
    customer, sku = f"gc-{uid}", f"gs-{uid}"
    fund_and_stock(api, customer=customer, amount=5_000, sku=sku, quantity=3)
    body = {"customer_id": customer, "lines": [{"sku": sku, "quantity": 2, "unit_price": 250}]}
    placed = api.post("/orders", json=body, headers={"Idempotency-Key": uid})
    version = placed.headers["aggregate-version"]

    mine = api.get(placed.headers["location"], params={"min_version": version}).json()
    api.get(placed.headers["location"], params={"wait": 30})

    assert (mine["consistency"], mine["stale"], mine["customer_id"]) == (
        "eventual",
        False,
        customer,
    )
    wait_until(
        lambda: api.get(f"/wallets/{customer}").json()["balance"] == 4_500,
        timeout=30,
        what="the wallet's read model to show the capture",
    )
    wallet = api.get(f"/wallets/{customer}").json()
    assert wallet["freshness"]["last_event_at"] is not None
    wait_until(
        lambda: (
            sku in [s["sku"] for s in api.get("/inventory", params={"below": 2}).json()["items"]]
        ),
        timeout=30,
        what="the SKU to show as low stock",
    )
