"""On the real cluster: the apps' /metrics, scraped directly, move after an order."""

from __future__ import annotations

import httpx

from cluster.local import LocalCluster
from tests.integration.support import deposit, place, restock, wait_until
from tests.metrics_text import Samples, parse, value

HOSTS = ("actor-host-1", "actor-host-2")


def scrape(cluster: LocalCluster, app: str) -> Samples:
    resp = httpx.get(f"http://127.0.0.1:{cluster.app(app).app_port}/metrics", timeout=10)
    resp.raise_for_status()
    return parse(resp.text)


def across_hosts(cluster: LocalCluster, name: str, **labels: str) -> float:
    """One metric summed over both actor hosts (placement puts an actor on either)."""
    return sum(value(scrape(cluster, host), name, **labels) for host in HOSTS)


def test_an_order_moves_the_business_counters_the_apps_serve(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    confirmed = across_hosts(cluster, "orderflow_orders_confirmed_total")
    reserving = "orderflow_saga_step_duration_seconds_count"
    steps = across_hosts(cluster, reserving, step="reserving", outcome="done")
    lag = value(scrape(cluster, "projector"), "orderflow_projection_lag_seconds_count")
    customer, sku = f"cust-{uid}", f"sku-{uid}"
    deposit(gateway_sidecar, customer, 1_000)
    restock(gateway_sidecar, sku, 3)

    order_id = place(gateway_sidecar, customer, [(sku, 1, 250)])

    wait_until(
        lambda: across_hosts(cluster, "orderflow_orders_confirmed_total") > confirmed,
        timeout=30,
        what=f"orderflow_orders_confirmed_total to count {order_id}",
    )
    assert across_hosts(cluster, reserving, step="reserving", outcome="done") > steps
    wait_until(
        lambda: value(scrape(cluster, "projector"), "orderflow_projection_lag_seconds_count") > lag,
        timeout=30,
        what="the projector's lag histogram to count the order's events",
    )
    found = scrape(cluster, "actor-host-1")
    labels = {v for (_, pairs) in found for _, v in pairs}
    assert not labels & {order_id, customer, sku}


def test_the_gateway_counts_a_request_by_its_route_template(cluster: LocalCluster) -> None:
    base = f"http://127.0.0.1:{cluster.app('gateway').app_port}"

    def not_found_gets() -> float:
        return value(
            scrape(cluster, "gateway"),
            "orderflow_http_requests_total",
            method="GET",
            route="/orders/{order_id}",
            status="404",
        )

    before = not_found_gets()
    operator = cluster.gateway_keys.headers()
    missing = httpx.get(f"{base}/orders/ord-never-placed", timeout=10, headers=operator)
    assert missing.status_code == 404

    after = not_found_gets()
    assert after == before + 1
    for app in ("shipping",):
        assert value(scrape(cluster, app), "process_resident_memory_bytes") > 0
