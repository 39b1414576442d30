"""The session cluster's Prometheus scrapes every process; its Zipkin holds one order's trace."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cluster.local import LocalCluster
from cluster.processes import ClusterError
from tests.integration.support import ship_an_order, wait_until

# the services daprd names its spans after (app ids), that one order's saga passes through
ORDER_SERVICES = {"gateway", "actor-host", "shipping"}


@pytest.fixture(scope="module")
def prometheus(cluster: LocalCluster) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{cluster.config.prometheus_port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


def _targets(prometheus: httpx.Client) -> dict[tuple[str, str], dict[str, Any]]:
    """{(job, process): target} of every active scrape target."""
    active = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
    return {(t["labels"]["job"], t["labels"]["process"]): t for t in active}


def _health(targets: dict[tuple[str, str], dict[str, Any]]) -> str:
    return "\n".join(
        f"  {job:<19} {process:<20} {t['health']:<7} {t['scrapeUrl']} {t['lastError']}"
        for (job, process), t in sorted(targets.items())
    )


def test_prometheus_scrapes_every_daprd_and_the_control_plane_and_they_are_up(
    cluster: LocalCluster, prometheus: httpx.Client
) -> None:
    expected = {("daprd", f"{a.name}-daprd") for a in cluster.config.apps()}
    expected |= {("dapr-control-plane", "placement"), ("dapr-control-plane", "scheduler")}
    expected |= {("app", a.name) for a in cluster.config.apps()}

    def all_up() -> bool:
        targets = _targets(prometheus)
        return set(targets) == expected and all(
            targets[key]["health"] == "up" for key in expected if key[0] != "app"
        )

    try:
        wait_until(all_up, timeout=60, what="every daprd and control-plane target to be up")
    except ClusterError as exc:
        pytest.fail(
            f"{exc}\nPrometheus's targets (app ones may be down):\n{_health(_targets(prometheus))}"
        )


def test_every_app_serves_metrics_and_its_scrape_target_is_up(
    cluster: LocalCluster, prometheus: httpx.Client
) -> None:
    apps = cluster.config.apps()
    silent = sorted(
        a.name
        for a in apps
        if httpx.get(f"http://127.0.0.1:{a.app_port}/metrics", timeout=5).status_code != 200
    )
    assert silent == [], f"apps without GET /metrics: {silent}"

    def up() -> bool:
        targets = _targets(prometheus)
        return all(targets[("app", a.name)]["health"] == "up" for a in apps)

    try:
        wait_until(up, timeout=60, what="every app's scrape target to be up")
    except ClusterError as exc:
        targets = {k: t for k, t in _targets(prometheus).items() if k[0] == "app"}
        pytest.fail(f"{exc}\nApp targets:\n{_health(targets)}")


def test_one_orders_traces_hold_spans_of_the_gateway_an_actor_host_and_shipping(
    api: httpx.Client, zipkin: httpx.Client, uid: str
) -> None:
    order_id = ship_an_order(api, uid)
    # daprd tags every actor call's span with the actor; the saga's other hops (publish,
    # deliveries) join those traces through the W3C traceparent
    query = {"annotationQuery": f"dapr.actor=OrderActor.{order_id}", "limit": "100"}
    found: list[list[dict[str, Any]]] = []

    def traced() -> bool:
        found[:] = zipkin.get("/api/v2/traces", params=query).json()
        services = [{s["localEndpoint"]["serviceName"] for s in trace} for trace in found]
        seen: set[str] = set().union(*services)
        return seen.issuperset(ORDER_SERVICES) and any(
            len(ORDER_SERVICES & s) >= 2 for s in services
        )

    try:
        wait_until(traced, timeout=60, what=f"Zipkin to hold {order_id}'s spans")
    except ClusterError as exc:
        seen = "; ".join(
            f"{t[0]['traceId']}: {sorted({s['localEndpoint']['serviceName'] for s in t})}"
            for t in found
        )
        pytest.fail(f"{exc}\nwanted {sorted(ORDER_SERVICES)}; {len(found)} traces: {seen}")


def _confirmed(prometheus: httpx.Client) -> float:
    """sum(orderflow_orders_confirmed_total) over every actor host, as Prometheus has it."""
    query = {"query": "sum(orderflow_orders_confirmed_total)"}
    result = prometheus.get("/api/v1/query", params=query).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_a_business_counter_moves_in_prometheus_after_an_order(
    api: httpx.Client, prometheus: httpx.Client, uid: str
) -> None:
    """Scraped by the cluster's Prometheus (not read from an app): an order that ships
    raises the confirmed-orders counter Prometheus stores."""
    before = _confirmed(prometheus)
    ship_an_order(api, f"{uid}-prom")
    seen: list[float] = []

    def moved() -> bool:
        seen[:] = [_confirmed(prometheus)]
        return seen[0] >= before + 1

    try:
        wait_until(moved, timeout=60, what="Prometheus to scrape the confirmed order")
    except ClusterError as exc:
        pytest.fail(f"{exc}: orderflow_orders_confirmed_total {before} before, {seen} after")


def test_promtool_accepts_the_clusters_prometheus_config(cluster: LocalCluster) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make ops-tools` (make test does)")
    path = cluster.config.prometheus_config_path

    check = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )

    assert check.returncode == 0, check.stdout + check.stderr
