"""One order on the real cluster: its lines in every process's JSON log, found by the
per-order log command, and ONE trace in Zipkin holding our own spans and daprd's."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from cluster import logs as order_logs
from cluster.config import ROOT
from cluster.local import LocalCluster
from cluster.processes import ClusterError
from tests.integration.support import ship_an_order, wait_until

# our spans' services (actors/toolkit/tracing.py) and daprd's (app ids) on one order's path
OUR_SERVICES = {"orderflow-gateway", "orderflow-actor-host", "orderflow-shipping"}
DAPRD_SERVICES = {"gateway", "actor-host", "shipping"}
# span names on the path gateway -> actor -> commit (which publishes) -> router -> actors ->
# shipping (Zipkin lowercases them)
OUR_SPANS = {
    "post /orders",
    "orderactor.place",
    "decide",
    "commit",
    "route order.placed",
    "inventoryactor.reserve",
    # under "route order.placed", after the Reserves: the rest of the chain
    "orderactor.onstockoutcomes",
    "walletactor.authorize",
    "orderactor.onpaymentauthorized",
    "shipping.ship",
    "orderactor.onshipmentdispatched",
}


@pytest.fixture(scope="module")
def order_id(api: httpx.Client) -> str:
    return ship_an_order(api, uuid.uuid4().hex[:12])


def test_the_order_log_command_finds_the_order_in_the_gateway_an_actor_host_and_shipping(
    cluster: LocalCluster, order_id: str
) -> None:
    log_dir = cluster.config.log_dir
    found: list[order_logs.Line] = []

    def three_processes() -> bool:
        found[:] = order_logs.order_lines(log_dir, order_id)
        processes = {line.process for line in found}
        return {"gateway", "shipping"} <= processes and any(
            p.startswith("actor-host-") and not p.endswith("-daprd") for p in processes
        )

    try:
        wait_until(three_processes, timeout=30, what=f"{order_id}'s lines in three logs")
    except ClusterError as exc:
        pytest.fail(f"{exc}\nfound:\n" + "\n".join(line.render() for line in found))
    messages = [line.message for line in found]
    assert any(m.startswith("order accepted") for m in messages), messages
    assert any(m.startswith("order shipped") for m in messages), messages
    assert any(m.startswith("answered with shipment.dispatched") for m in messages), messages
    assert found == sorted(found)  # merged by time

    command = subprocess.run(
        [sys.executable, "-m", "cluster", "logs", "--order", order_id],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "ORDERFLOW_STATE_DIR": str(cluster.config.state_dir)},
        timeout=60,
    )
    assert command.returncode == 0, command.stdout + command.stderr
    assert "order shipped" in command.stdout
    assert f"lines about {order_id} from" in command.stdout


def _order_traces(zipkin: httpx.Client, order_id: str) -> list[list[dict[str, Any]]]:
    """Traces holding our OrderActor turn spans for the order (tagged actor.id)."""
    query = {
        "serviceName": "orderflow-actor-host",
        "annotationQuery": f"actor.id={order_id}",
        "limit": "50",
        "lookback": str(3_600_000),
    }
    traces: list[list[dict[str, Any]]] = zipkin.get("/api/v2/traces", params=query).json()
    return traces


def _is_one_tree(spans: list[dict[str, Any]]) -> bool:
    ids = {s["id"] for s in spans}
    roots = [s for s in spans if not s.get("parentId")]
    return len(roots) == 1 and all(s["parentId"] in ids for s in spans if s.get("parentId"))


def _describe(trace: list[dict[str, Any]]) -> str:
    return f"{trace[0]['traceId']}: " + ", ".join(
        sorted({f"{s['localEndpoint']['serviceName']}:{s.get('name')}" for s in trace})
    )


def test_one_order_is_one_trace_of_our_spans_and_daprds_from_gateway_to_shipping(
    zipkin: httpx.Client, order_id: str
) -> None:
    found: list[list[dict[str, Any]]] = []

    def whole() -> bool:
        found[:] = _order_traces(zipkin, order_id)
        for trace in found:
            services = {s["localEndpoint"]["serviceName"] for s in trace}
            names = {s.get("name", "") for s in trace}
            if services >= OUR_SERVICES | DAPRD_SERVICES and names >= OUR_SPANS:
                return _is_one_tree(trace)
        return False

    try:
        wait_until(whole, timeout=60, interval=1, what=f"one trace of {order_id} in Zipkin")
    except ClusterError as exc:
        pytest.fail(f"{exc}\n{len(found)} traces:\n" + "\n".join(_describe(t) for t in found))
    [trace] = [t for t in found if {s["localEndpoint"]["serviceName"] for s in t} >= OUR_SERVICES]
    [root] = [s for s in trace if not s.get("parentId")]
    assert (root["localEndpoint"]["serviceName"], root["name"]) == (
        "orderflow-gateway",
        "post /orders",
    )
